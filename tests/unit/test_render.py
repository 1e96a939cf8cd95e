"""What the chat shows (`web.render`): escaping, answer lines and chips, the footer, the copied text."""

from __future__ import annotations

from dataclasses import replace

from coopbot.schema import Answer, Chunk, Citation, Hit
from coopbot.web.render import (
    Exchange,
    Session,
    answer_footer,
    copy_text,
    escape_markdown,
    render_answer,
    render_sources,
)

CITATION = Citation(1, "c", "yrd.md", "长三角", ("长三角", "范围"), "总面积是35.8万平方公里。", 0, 12, "p")


def test_the_footer_says_in_chinese_how_the_answer_was_written_and_names_the_backend_only_in_its_tooltip() -> None:
    answer = Answer(question="问", text="答。[1]", citations=[], refused=False, backend="llamacpp")
    footer = answer_footer(answer)
    assert "由本地模型根据所引原文写成" in footer and 'title="llamacpp"' in footer
    assert "回答方式" not in footer and ">llamacpp<" not in footer
    fell_back = replace(answer, backend="extractive", fallback_from="my_llm", notices=["生成接口 *超时*。"])
    footer = answer_footer(fell_back)
    assert "生成接口 \\*超时\\*" in footer and "语言模型未能回答，摘自知识库原文" in footer
    assert 'title="extractive ← my_llm"' in footer
    hostile = replace(answer, backend='x"><script>')
    assert "<script>" not in answer_footer(hostile)


def test_each_cited_sentence_gets_its_own_line_but_a_marker_inside_a_sentence_stays() -> None:
    shown = render_answer("第一句。[1]第二句。[1][2]第三句，据[3]，是的。[3]", turn=2)
    lines = shown.split("\n")
    assert len(lines) == 3 and lines[1].startswith("第二句") and lines[2].startswith("第三句，据")
    assert shown.count('class="coopbot-cite"') == 5 and 'href="#coopbot-src-2-3"' in lines[2]


def test_copied_text_is_plain_with_where_each_marker_comes_from() -> None:
    answer = Answer(question="问", text="总面积是35.8万平方公里。[1]", citations=[CITATION], refused=False)
    assert (
        copy_text(answer)
        == "总面积是35.8万平方公里。[1]\n\n参考来源：\n[1] 长三角 › 范围（yrd.md）：“总面积是35.8万平方公里。”"
    )
    refusal = Answer(question="问", text="知识库中没有……", citations=[], refused=True)
    assert copy_text(refusal) == "知识库中没有……"


def test_rendering_escapes_everything_but_coopbot_markup() -> None:

    hostile = '<img src=x onerror="alert(1)"> **粗体** [链接](javascript:alert(1)) 1. 列表'
    shown = escape_markdown(hostile)
    assert "<" not in shown and "&lt;img" in shown and "\\*\\*" in shown and "\\[链接\\]\\(" in shown
    linked = render_answer("第一句。[1]\n<script>x</script>[2]", turn=3)
    assert linked.count('class="coopbot-cite"') == 2 and 'href="#coopbot-src-3-2"' in linked
    assert "<script>" not in linked and "&lt;script&gt;" in linked

    passage = "前文<tt>。引用的句子。后文"
    citation = Citation(1, "c", "f<.md", "标题<i>", ("标题<i>", "章<u>"), "引用的句子。", 0, 6, passage)
    answered = Answer(question="问<q>", text="引用的句子。[1]", citations=[citation], refused=False)
    chunk = Chunk("c2", "g.md", "相关<s>", ("相关<s>",), "相关<em>内容", 0, 8, "h", 0)
    refused = Answer(question="无关", text="没有", citations=[], refused=True, related=[Hit(chunk, 1.0, 1)])
    html = render_sources(Session([Exchange("问<q>", answered), Exchange("无关", refused)]))
    assert "<mark>引用的句子。</mark>" in html and "前文&lt;tt&gt;。" in html
    for raw in ("<tt>", "<i>", "<u>", "<q>", "<s>", "<em>", "f<.md"):
        assert raw not in html
    assert 'id="coopbot-src-1-1"' in html and "coopbot-related" in html
    assert html.index('data-turn="2"') < html.index('data-turn="1"'), "newest turn first"
