"""Near misses made from a reading-comprehension set, and the named things they swap."""

from __future__ import annotations

import random
from pathlib import Path

from coopbot.evals.near_miss import name_inventory, near_miss_queries, swap_named_thing
from coopbot.evals.retrieval import EvalSet, Passage, Query
from coopbot.text.names import NamedThing, holds, named_things, names_held
from coopbot.text.normalise import comparable


def test_named_things_are_years_and_proper_names_in_comparable_form() -> None:
    things = named_things("2030年廣東省的研發經費要達到多少？")
    assert NamedThing("2030", "year") in things
    assert any(t.text == "广东省" and t.kind == "ns" for t in things)  # traditional folded to simplified
    assert named_things("研发经费要达到多少？") == ()
    assert names_held("2030年广东省的研发经费？", comparable("广东省提出到2030年……")) == 1.0
    assert names_held("2030年广东省的研发经费？", comparable("上海市提出到2030年……")) == 0.5
    assert names_held("研发经费是多少？", "") == 1.0


def test_a_name_is_held_in_the_forms_writers_use_for_it() -> None:
    def place(name: str) -> NamedThing:
        return NamedThing(name, "ns")

    assert holds("广东提出", place("广东省"))  # without the administrative suffix
    assert holds("推动川渝合作", place("四川")) and holds("沪苏浙皖", place("安徽"))  # abbreviations in a compound
    assert not holds("四川盆地以东", place("重庆")) and not holds("迈上新台阶", place("台湾"))
    assert not holds("川流不息", place("四川"))  # one abbreviation alone is an ordinary character
    assert holds("长江三角洲区域", place("长三角"))  # shortened by dropping characters
    assert not holds("长江，三角洲", place("长三角"))  # not across a sentence break
    assert not holds("2031年", NamedThing("2030", "year")) and not holds("广西", place("广东"))


def test_a_year_the_article_mentions_moves_to_one_it_never_mentions() -> None:
    article = comparable("该计划于2019年启动，2020年完成第一阶段。")
    swapped = swap_named_thing("该计划是2019年启动的吗？", article, {}, random.Random(0))
    assert swapped is not None
    question, taken, put = swapped
    assert taken == "2019" and put not in article and put == "2018"  # 2020 is in the article: skipped
    assert question == "该计划是2018年启动的吗？"  # the question's own punctuation and script are kept
    traditional = swap_named_thing("該計劃是2019年啟動的嗎？", article, {}, random.Random(0))
    assert traditional is not None and traditional[0] == "該計劃是2018年啟動的嗎？"


def test_a_name_moves_to_one_of_its_kind_the_article_never_mentions() -> None:
    article = comparable("上海市的研发投入强度达到4.4%。北京市紧随其后。")
    inventory = {"ns": ["北京市", "上海", "广东省"], "nr": [], "nt": []}
    swapped = swap_named_thing("上海市的研发投入强度是多少？", article, inventory, random.Random(0))
    assert swapped is not None and swapped[1] == "上海市"
    assert swapped[2] == "广东省"  # 北京市 is in the article, 上海 is part of the name taken out
    assert swap_named_thing("研发投入强度是多少？", article, inventory, random.Random(0)) is None
    assert swap_named_thing("浙江省的投入是多少？", article, inventory, random.Random(0)) is None  # not in the article


def test_near_miss_queries_keep_the_gold_and_are_deterministic() -> None:
    passages = [
        Passage("a-1", "示范区", "示范区于2019年设立，面积约2300平方公里。"),
        Passage("a-2", "示范区", "示范区包括青浦区、吴江区和嘉善县。"),
        Passage("b-1", "新区", "新区位于广东省，2017年设立。"),
    ]
    queries = [
        Query("q1", "示范区是哪一年设立的，2019年吗？", ("a-1",), ("2019年",)),
        Query("q2", "新区位于广东省的哪里？", ("b-1",), ("广东省",)),
        Query("q3", "面积有多大？", ("a-1",), ("2300平方公里",)),
    ]
    eval_set = EvalSet("toy", Path("."), passages, queries)
    made = near_miss_queries(eval_set)
    assert [q.id for q in made][:1] == ["q1~near"] and all(q.id != "q3~near" for q in made)
    first = made[0]
    assert first.gold_ids == ("a-1",) and "2019" not in first.question and "年" in first.question
    assert near_miss_queries(eval_set) == made
    assert "广东省" in name_inventory([q.question for q in queries])["ns"]
