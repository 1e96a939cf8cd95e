"""Chunking: sections from the documents' own headings, whole sentences, exact offsets, stable ids."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

from coopbot.ingest.chunking import Section, chunk_document, split_sections
from coopbot.schema import Chunk, Document, embed_text

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
FILES = sorted(p.name for p in KNOWLEDGE.iterdir() if p.name != "SOURCES.md")
SEED = "seed-cross-regional-innovation-cooperation.txt"
SEED_TITLE = "跨区域创新合作助力经济高质量发展新模式"
SIZE, MIN_SIZE, OVERLAP = 450, 150, 80

# Written independently of the chunker: lines that are headings beyond doubt (short, numbered, not prose).
DEFINITE_HEADING = re.compile(
    r"^(?:#{1,6}\s|第[一二三四五六七八九十百零\d]+[篇章节]|[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]"
    r"|\d+[.．]\s?)[^。；！？]{0,40}$"
)
# A sentence end, closing quotes and brackets included, at the end of a string.
ENDS_SENTENCE = re.compile(r"[。！？；!?…][”’」』）)】》〕]*$")
# A sentence end followed by more text: a chunk holding one has more than one sentence.
INNER_SENTENCE_END = re.compile(r"[。！？；!?…][”’」』）)】》〕]*(?=\S)")


def make_doc(text: str, title: str = "测试文档", doc_id: str = "mini.md") -> Document:
    """A hand-written document; the loader is not needed to test chunking."""
    return Document(doc_id=doc_id, path=Path(doc_id), title=title, text=text, source_hash="0" * 64, encoding="utf-8")


@cache
def knowledge_doc(name: str) -> Document:
    """A knowledge/ file as a Document: the first `# ` line is an .md's title; the seed's title is known."""
    text = (KNOWLEDGE / name).read_text(encoding="utf-8")
    title = SEED_TITLE if name == SEED else next(line[2:].strip() for line in text.splitlines() if line[:2] == "# ")
    return make_doc(text, title=title, doc_id=name)


@cache
def knowledge_chunks(name: str) -> tuple[Chunk, ...]:
    return tuple(chunk_document(knowledge_doc(name), size=SIZE, min_size=MIN_SIZE, overlap=OVERLAP))


def containing(name: str, phrase: str) -> Chunk:
    """The first chunk of a knowledge file whose text holds `phrase`."""
    return next(c for c in knowledge_chunks(name) if phrase in c.text)


def paths(doc: Document) -> list[tuple[str, ...]]:
    return [s.heading_path for s in split_sections(doc)]


def section_texts(doc: Document) -> list[str]:
    return [doc.text[s.start : s.end] for s in split_sections(doc)]


# --- every knowledge file --------------------------------------------------------------------------------


def test_knowledge_files_are_found() -> None:
    assert len(FILES) >= 13 and SEED in FILES


@pytest.mark.parametrize("name", FILES)
def test_offsets_round_trip_in_order(name: str) -> None:
    doc, chunks = knowledge_doc(name), knowledge_chunks(name)
    assert chunks
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.char_start : chunk.char_end]
        assert chunk.text.strip() == chunk.text != ""
        assert chunk.doc_id == name and chunk.doc_title == doc.title
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts)
    assert all(a.char_end <= b.char_end for a, b in pairwise(chunks))


@pytest.mark.parametrize("name", FILES)
def test_sections_are_ordered_trimmed_and_heading_free(name: str) -> None:
    doc = knowledge_doc(name)
    sections = split_sections(doc)
    for section in sections:
        body = doc.text[section.start : section.end]
        assert body.strip() == body != ""
        assert section.heading_path[0] == doc.title
        assert not [line for line in body.splitlines() if DEFINITE_HEADING.match(line.strip())]
    assert all(a.end <= b.start for a, b in pairwise(sections))


@pytest.mark.parametrize("name", FILES)
def test_no_chunk_crosses_a_heading(name: str) -> None:
    doc = knowledge_doc(name)
    sections = split_sections(doc)
    for chunk in knowledge_chunks(name):
        assert any(
            s.start <= chunk.char_start and chunk.char_end <= s.end and s.heading_path == chunk.heading_path
            for s in sections
        ), chunk
        assert not [line for line in chunk.text.splitlines() if DEFINITE_HEADING.match(line.strip())], chunk
        assert doc.title not in chunk.text.splitlines()


@pytest.mark.parametrize("name", FILES)
def test_no_sentence_is_cut(name: str) -> None:
    text = knowledge_doc(name).text
    for chunk in knowledge_chunks(name):
        after = text[chunk.char_end :].lstrip(" \t\u3000")
        assert ENDS_SENTENCE.search(chunk.text) or after[:1] in ("", "\n"), chunk.text[-30:]
        before = text[: chunk.char_start].rstrip(" \t\u3000")
        assert before == "" or before.endswith("\n") or ENDS_SENTENCE.search(before), chunk.text[:30]


@pytest.mark.parametrize("name", FILES)
def test_sizes(name: str) -> None:
    chunks = knowledge_chunks(name)
    for chunk in chunks:
        single_sentence = not INNER_SENTENCE_END.search(chunk.text)
        # over `size` only by merging a small tail (at most size + min_size) or as one long sentence
        assert len(chunk.text) <= SIZE + MIN_SIZE or single_sentence, len(chunk.text)
    # a short chunk is a short section, or a section's end that could not merge into its predecessor
    sections = split_sections(knowledge_doc(name))
    squeezed = [
        c
        for c in chunks
        if len(c.text) < MIN_SIZE and not any(s.start == c.char_start and s.end == c.char_end for s in sections)
    ]
    assert len(squeezed) <= max(1, len(chunks) // 50), [c.text for c in squeezed]


@pytest.mark.parametrize("name", FILES)
def test_ids_are_stable_unique_and_derived_from_content(name: str) -> None:
    chunks = knowledge_chunks(name)
    again = chunk_document(knowledge_doc(name), size=SIZE, min_size=MIN_SIZE, overlap=OVERLAP)
    assert [c.chunk_id for c in again] == [c.chunk_id for c in chunks]
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for chunk in chunks:
        assert chunk.content_hash == hashlib.sha256(embed_text(chunk.heading_path, chunk.text).encode()).hexdigest()
        assert re.fullmatch(rf"[0-9a-f]{{10}}-{chunk.content_hash[:20]}(-\d+)?", chunk.chunk_id)


def test_knowledge_chunks_are_mostly_well_filled() -> None:
    sizes = [len(c.text) for name in FILES for c in knowledge_chunks(name)]
    assert sum(size < MIN_SIZE for size in sizes) < len(sizes) // 5
    assert sorted(sizes)[len(sizes) // 2] > SIZE // 2


# --- heading paths in the real documents -----------------------------------------------------------------


def test_plan_outline_markdown_headings() -> None:
    chunk = containing("yrd-integration-outline-2019.md", "联合提升原始创新能力")
    assert chunk.heading_path == (
        "长江三角洲区域一体化发展规划纲要",
        "第四章　加强协同创新产业体系建设",
        "第一节　构建区域创新共同体",
    )
    assert containing("yrd-integration-outline-2019.md", "首届中国国际进口博览会").heading_path == (
        "长江三角洲区域一体化发展规划纲要",
        "前言",
    )


def test_fifteenth_plan_plain_line_headings_and_table_of_contents() -> None:
    name = "15th-five-year-plan-outline-2026.md"
    title = "中华人民共和国国民经济和社会发展第十五个五年规划纲要"
    chunk = containing(name, "聚焦战略必争领域和产业链供应链薄弱环节")
    assert chunk.heading_path == (
        title,
        "第三篇　加快高水平科技自立自强　引领发展新质生产力",
        "第八章　加强原始创新和关键核心技术攻关",
        "第一节　打好关键核心技术攻坚战",
    )
    # the table of contents builds no headings: the preface after it sits under the title alone
    assert containing(name, "规划纲要，根据《中共中央关于制定").heading_path == (title,)
    assert not any("第一章　发展环境" in c.text for c in knowledge_chunks(name))


@pytest.mark.parametrize(
    ("name", "chapter"),
    [
        ("law-promoting-transformation-of-sci-tech-achievements-2015.md", "第一章 总则"),
        ("law-science-and-technology-progress-2021.md", "第一章 总 则"),
        ("shanghai-yrd-eco-green-demo-zone-regulation-2024.md", "第一章 总 则"),
    ],
)
def test_law_articles_are_body_under_their_chapter(name: str, chapter: str) -> None:
    chunks = knowledge_chunks(name)
    assert containing(name, "第一条").heading_path == (knowledge_doc(name).title, chapter)
    second_chapter = next(c for c in chunks if c.heading_path[-1].startswith("第二章"))
    assert re.match(r"第[一二三四五六七八九十百]+条", second_chapter.text)


def test_law_list_items_are_not_headings() -> None:
    name = "law-promoting-transformation-of-sci-tech-achievements-2015.md"
    chunk = containing(name, "（六）其他协商确定的方式。")
    assert chunk.heading_path == ("中华人民共和国促进科技成果转化法", "第二章 组织实施")
    assert "第十六条" in chunk.text  # the list stays with its article


def test_law_chunks_start_at_articles() -> None:
    name = "law-science-and-technology-progress-2021.md"
    starts = [c.text[:12] for c in knowledge_chunks(name) if len(c.heading_path) > 1]
    assert sum(bool(re.match(r"第[一二三四五六七八九十百]+条", s)) for s in starts) >= 0.8 * len(starts)


def test_seed_article_numbered_headings() -> None:
    assert containing(SEED, "缩小地区发展差距").heading_path == (
        SEED_TITLE,
        "三、跨区域创新合作的重要性",
        "1. 促进区域经济协调发展",
    )
    assert containing(SEED, "具有重要的现实意义").heading_path == (SEED_TITLE, "总结")
    assert containing(SEED, "在全球化背景下").heading_path == (SEED_TITLE,)


def test_work_report_lead_sentences() -> None:
    name = "chongqing-gov-work-report-2026.md"
    title = "2026年重庆市政府工作报告"
    review = "一、2025年和“十四五”时期工作回顾"
    lead = containing(name, "挂牌重庆大学智能汽车技术学院")
    assert lead.heading_path == (title, review, "（二）着力推动科技创新和产业创新。")
    assert lead.text.startswith("（二）着力推动科技创新和产业创新。")  # the lead line stays in the text
    # a lead paragraph followed by its own paragraphs keeps them ...
    assert containing(name, "激发民间投资活力").heading_path == (
        title,
        "三、2026年工作安排",
        "（一）多措并举扩大内需。",
    )
    # ... but after a list of one-paragraph items the text belongs to the parent again
    assert containing(name, "五年来，我们坚持创新引领").heading_path == (title, review)


def test_sentence_per_line_report() -> None:
    chunk = containing("gov-work-report-2019-national.md", "打造工业互联网平台")
    assert chunk.heading_path == (
        "政府工作报告（2019年）",
        "三、2019年政府工作任务",
        "（三）坚持创新引领发展，培育壮大新动能。",
    )
    assert SIZE // 2 < len(chunk.text) <= SIZE + MIN_SIZE  # one sentence per line still packs into full chunks


def test_appendix_and_glossary_close_the_report_body() -> None:
    name = "guangdong-gov-work-report-2026.md"
    title = "2026年广东省政府工作报告"
    assert containing(name, "农村低保标准占城镇低保标准").heading_path == (
        title,
        "附件1",
        "一、提高低保、特困人员、孤儿基本生活与残疾人两项补贴和重点群体救助保障水平。",
    )
    assert containing(name, "指世界一流大学和一流学科").heading_path == (title, "名词解释", "5.“双一流”：")


# --- split_sections on hand-written documents ------------------------------------------------------------


def test_heading_hierarchy_pops_same_and_deeper_levels() -> None:
    doc = make_doc(
        "# 测试文档\n\n## 第一章 总则\n\n导语。\n\n### 第一节 甲\n\n一、乙\n\n（一）丙\n\n正文一。\n\n"
        "（二）丁\n\n正文二。\n\n1. 戊\n\n正文三。\n\n二、己\n\n正文四。\n\n## 第二章 庚\n\n正文五。\n"
    )
    assert paths(doc) == [
        ("测试文档", "第一章 总则"),
        ("测试文档", "第一章 总则", "第一节 甲", "一、乙", "（一）丙"),
        ("测试文档", "第一章 总则", "第一节 甲", "一、乙", "（二）丁"),
        ("测试文档", "第一章 总则", "第一节 甲", "一、乙", "（二）丁", "1. 戊"),
        ("测试文档", "第一章 总则", "第一节 甲", "二、己"),
        ("测试文档", "第二章 庚"),
    ]
    assert section_texts(doc) == ["导语。", "正文一。", "正文二。", "正文三。", "正文四。", "正文五。"]


def test_sections_without_body_are_dropped() -> None:
    doc = make_doc("# 测试文档\n\n## 第一章 甲\n\n## 第二章 乙\n\n### 第一节 丙\n\n正文。\n\n## 第三章 丁\n")
    start = doc.text.index("正文。")
    assert split_sections(doc) == [Section(("测试文档", "第二章 乙", "第一节 丙"), start, start + 3)]
    assert [c.text for c in chunk_document(doc)] == ["正文。"]


def test_table_of_contents_is_dropped() -> None:
    with_preface = make_doc(
        "目录\n\n第一章　甲\n\n第二章　乙\n\n前言正文。\n\n第一章　甲\n\n正文一。\n\n第二章　乙\n\n正文二。\n"
    )
    assert paths(with_preface) == [("测试文档",), ("测试文档", "第一章　甲"), ("测试文档", "第二章　乙")]
    assert section_texts(with_preface) == ["前言正文。", "正文一。", "正文二。"]
    # without a preface the contents end where their first entry comes back
    without_preface = make_doc("目 录\n第一章 甲\n第二章 乙\n第一章 甲\n正文一。\n第二章 乙\n正文二。")
    assert paths(without_preface) == [("测试文档", "第一章 甲"), ("测试文档", "第二章 乙")]


def test_title_lines_reset_the_path_and_are_not_text() -> None:
    doc = make_doc("网站口号!\n\n测试文档\n\n一、背景\n\n正文一。\n\n测试文档\n\n正文二。\n", doc_id="page.txt")
    assert paths(doc) == [("测试文档",), ("测试文档", "一、背景"), ("测试文档",)]
    assert [c.text for c in chunk_document(doc)] == ["网站口号!", "正文一。", "正文二。"]


def test_lead_sentence_is_a_heading_but_stays_text() -> None:
    doc = make_doc(
        "一、总体\n\n（一）扩大内需。第一段正文。\n\n第二段正文。\n\n（二）科技创新。正文。\n\n"
        "（三）一个完整的句子作为标题。\n\n第三段正文。\n"
    )
    assert paths(doc) == [
        ("测试文档", "一、总体", "（一）扩大内需。"),
        ("测试文档", "一、总体", "（二）科技创新。"),
        ("测试文档", "一、总体", "（三）一个完整的句子作为标题。"),
    ]
    assert section_texts(doc)[0] == "（一）扩大内需。第一段正文。\n\n第二段正文。"


def test_text_after_a_list_of_one_paragraph_items_returns_to_the_parent() -> None:
    doc = make_doc("一、回顾\n\n（一）甲。正文甲。\n\n（二）乙。正文乙。\n\n五年来，正文丙。\n\n二、任务\n\n正文丁。\n")
    assert paths(doc) == [
        ("测试文档", "一、回顾", "（一）甲。"),
        ("测试文档", "一、回顾", "（二）乙。"),
        ("测试文档", "一、回顾"),
        ("测试文档", "二、任务"),
    ]


def test_list_items_are_not_headings() -> None:
    law = make_doc(
        "## 第二章 实施\n\n第十六条 可以采用下列方式：\n\n（一）自行投资实施转化；\n\n"
        "（二）其他协商确定的方式。\n\n第十七条 国家鼓励转化。\n"
    )
    assert paths(law) == [("测试文档", "第二章 实施")]
    report = make_doc("一、任务\n\n要做到：\n\n（一）扩大内需；\n\n（二）稳定就业。\n")
    assert paths(report) == [("测试文档", "一、任务")]


def test_long_numbered_prose_is_not_a_heading() -> None:
    prose = "（一）" + "这是一句很长的正文" * 10 + "。后续。"
    doc = make_doc(f"一、总体\n\n{prose}\n")
    assert paths(doc) == [("测试文档", "一、总体")]


# --- chunk_document on hand-written documents ------------------------------------------------------------


def sentence(n: int, mark: str = "句") -> str:
    """A sentence of exactly n characters, ending in 。."""
    return mark * (n - 1) + "。"


def test_document_without_headings() -> None:
    text = "\n\n".join(sentence(120, m) for m in "甲乙丙丁戊己")
    chunks = chunk_document(make_doc(text))
    assert len(chunks) > 1 and all(c.heading_path == ("测试文档",) for c in chunks)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)


def test_sentence_longer_than_size_stays_whole() -> None:
    long = sentence(490, "长")  # within the bound size + min_size: a longer one is cut (test_bounded_ingestion)
    text = f"{sentence(100, '甲')}{long}{sentence(100, '乙')}"
    chunks = chunk_document(make_doc(text), size=450, min_size=50, overlap=0)
    assert long in [c.text for c in chunks]
    assert all(len(c.text) <= 450 for c in chunks if c.text != long)


def test_extremely_long_sentence_splits_at_clauses() -> None:
    clauses = ["分句" * 20 + str(i % 10) + "，" for i in range(40)]  # 40 clauses of 42 characters
    long = "".join(clauses)[:-1] + "。"
    doc = make_doc(f"## 第一章 甲\n\n{long}\n")
    chunks = chunk_document(doc, size=450, min_size=150, overlap=80)
    assert "".join(c.text for c in chunks) == long  # pieces are consecutive, nothing is lost or repeated
    assert all(len(c.text) <= 450 for c in chunks)
    assert all(c.text.endswith("，") for c in chunks[:-1])


def test_overlap_repeats_whole_tail_sentences() -> None:
    text = "".join(sentence(50, m) for m in "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉")
    chunks = chunk_document(make_doc(text), size=200, min_size=50, overlap=80)
    assert len(chunks) > 2
    for previous, chunk in pairwise(chunks):
        # one 50-character sentence fits in the 80-character overlap, two do not
        assert previous.char_end - chunk.char_start == 50
        assert chunk.text[:50] == previous.text[-50:]


def test_no_overlap_when_the_last_sentence_is_longer_than_overlap() -> None:
    text = "".join(sentence(100, m) for m in "甲乙丙丁戊己庚辛")
    chunks = chunk_document(make_doc(text), size=200, min_size=50, overlap=80)
    assert [len(c.text) for c in chunks] == [200, 200, 200, 200]
    assert all(a.char_end == b.char_start for a, b in pairwise(chunks))


def test_small_tail_merges_into_previous_chunk() -> None:
    text = "".join(sentence(100, m) for m in "甲乙丙丁") + sentence(40, "尾")
    chunks = chunk_document(make_doc(text), size=200, min_size=50, overlap=0)
    assert [len(c.text) for c in chunks] == [200, 240]


def test_paragraph_break_preferred_near_the_target() -> None:
    first = sentence(150, "甲") + sentence(150, "乙")
    second = sentence(100, "丙") + sentence(100, "丁") + sentence(100, "戊")
    chunks = chunk_document(make_doc(f"{first}\n{second}"), size=450, min_size=50, overlap=0)
    assert chunks[0].text == first  # not 甲乙丙 across the paragraph break


def test_duplicate_content_gets_unique_ids() -> None:
    text = "## 第一章 甲\n\n重复的段落。\n\n## 第一章 甲\n\n重复的段落。\n\n## 第一章 甲\n\n重复的段落。\n"
    chunks = chunk_document(make_doc(text))
    assert len({c.content_hash for c in chunks}) == 1
    base = chunks[0].chunk_id
    assert [c.chunk_id for c in chunks] == [base, f"{base}-2", f"{base}-3"]


def test_ids_depend_on_document_id() -> None:
    text = "正文。"
    assert chunk_document(make_doc(text, doc_id="a.md"))[0].chunk_id != chunk_document(make_doc(text))[0].chunk_id


def changed_ids_only_where_edited(old: Document, new: Document, edit_start: int, edit_end: int) -> None:
    """Chunks of `new` that do not touch new.text[edit_start:edit_end] keep the ids they had in `old`."""
    old_ids = {c.chunk_id for c in chunk_document(old)}
    new_chunks = chunk_document(new)
    touched = [c for c in new_chunks if c.char_start < edit_end and edit_start < c.char_end]
    assert touched
    assert all(c.chunk_id not in old_ids for c in touched)
    assert all(c.chunk_id in old_ids for c in new_chunks if c not in touched)


def test_editing_a_paragraph_changes_only_its_chunks() -> None:
    paragraphs = [sentence(60, m) + sentence(120, m) + sentence(60, m) for m in "甲乙丙丁戊己"]
    body = "\n\n".join(paragraphs)
    old = make_doc(f"## 第一章 一\n\n{body}\n\n## 第二章 二\n\n{body}\n")
    edited = paragraphs[2].replace(sentence(120, "丙"), sentence(120, "丙") + sentence(30, "新"))
    new_text = old.text.replace(paragraphs[2], edited, 1)
    start = new_text.index(sentence(30, "新"))
    changed_ids_only_where_edited(old, make_doc(new_text), start, start + 30)


def test_editing_a_knowledge_paragraph_changes_only_its_chunks() -> None:
    old = knowledge_doc("yrd-integration-outline-2019.md")
    position = old.text.index("联合提升原始创新能力")
    new = make_doc(old.text[:position] + "共同" + old.text[position + 2 :], title=old.title, doc_id=old.doc_id)
    changed_ids_only_where_edited(old, new, position, position + 2)


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="chunk sizes"):
        chunk_document(make_doc("正文。"), size=0)
