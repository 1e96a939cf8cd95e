"""Reading files into cleaned Documents: encodings, formats, page furniture, and bad files."""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sys
import zipfile
from pathlib import Path

import pytest

from coopbot.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    LoadError,
    default_furniture,
    load_document,
    parse_furniture,
    strip_furniture,
)
from coopbot.ingest.loaders.registry import reader, supported_suffixes
from coopbot.ingest.loaders.text import read_text

KNOWLEDGE = Path(__file__).parents[2] / "knowledge"
SEED = KNOWLEDGE / "seed-cross-regional-innovation-cooperation.txt"
SEED_TITLE = "跨区域创新合作助力经济高质量发展新模式"
SEED_FURNITURE = (
    "让一部分企业先学到真知识!",
    "2025-01-24 10:04:10",
    "1 阅读",
    "跨区域创新合作模式",
    "标签:",
    "免责声明:本站所提供的内容均来源于网友提供或网络分享、搜集,由本站编辑整理,仅供个人研究、交流学习使用。"
    "如涉及版权问题,请联系本站管理员予以更改或删除。",
    "本课程名称:/",
    "填写信息,即有专人与您沟通",
)

SIMPLIFIED = (
    "长江三角洲地区是我国经济发展最活跃、开放程度最高、创新能力最强的区域之一，"
    "在国家现代化建设大局和全方位开放格局中具有举足轻重的战略地位。\n"
    "推动长三角一体化发展，增强长三角地区创新能力和竞争能力，提高经济集聚度、区域连接性和政策协同效率，"
    "对引领全国高质量发展、建设现代化经济体系意义重大。"
)
TRADITIONAL = (
    "長江三角洲地區是我國經濟發展最活躍、開放程度最高、創新能力最強的區域之一，"
    "在國家現代化建設大局和全方位開放格局中具有舉足輕重的戰略地位。\n"
    "推動長三角一體化發展，增強長三角地區創新能力和競爭能力，提高經濟集聚度、區域連接性和政策協同效率，"
    "對引領全國高質量發展、建設現代化經濟體系意義重大。"
)
SHORT_SIMPLIFIED = "长三角科技创新共同体。\n推动区域协同发展。"
SHORT_TRADITIONAL = "長江三角洲區域一體化發展規劃綱要。\n推動科技創新與產業融合。"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(LoadError) as info:
        load_document(path, path.name)
    return str(info.value)


# --- the real knowledge base ---------------------------------------------------------------------


def test_seed_page_loses_its_furniture_and_keeps_its_article() -> None:
    raw = SEED.read_text(encoding="utf-8")
    document = load_document(SEED, SEED.name)

    assert document.title == SEED_TITLE
    assert document.encoding == "utf-8"
    assert document.source_hash == hashlib.sha256(SEED.read_bytes()).hexdigest()
    for line in SEED_FURNITURE:
        assert line not in document.text
    for fragment in ("让一部分企业", "阅读", "免责声明", "本课程名称", "填写信息", "标签"):
        assert fragment not in document.text
    assert document.text.count(SEED_TITLE) == 1  # the page repeats its title; one copy stays, as the title line

    # Expected body: the raw page minus exactly the furniture lines and the second title, gaps closed.
    lines = raw.split("\n")
    second_title = [i for i, line in enumerate(lines) if line == SEED_TITLE][1]
    body = [line for i, line in enumerate(lines) if line not in SEED_FURNITURE and i != second_title]
    expected = re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip("\n")
    assert document.text == expected
    assert document.text.startswith(SEED_TITLE + "\n\n在全球化背景下,经济发展模式正在不断演变")
    assert "总结\n\n跨区域创新合作作为推动经济高质量发展的新模式" in document.text
    assert document.text.endswith("为各地区的经济高质量发展注入新的动力。")
    assert document.removed == (
        SEED_FURNITURE[0],
        *SEED_FURNITURE[1:4],
        SEED_TITLE,
        *SEED_FURNITURE[4:],
    )


def test_every_knowledge_file_loads_and_markdown_titles_are_the_heading() -> None:
    paths = sorted(path for path in KNOWLEDGE.iterdir() if path.suffix in SUPPORTED_SUFFIXES)
    documents = {path.name: load_document(path, path.name) for path in paths}
    assert len([name for name in documents if name != "SOURCES.md"]) == 13
    for path in paths:
        document = documents[path.name]
        assert document.text.strip() and document.encoding == "utf-8"
        if path.suffix == ".md":
            heading = path.read_text(encoding="utf-8").split("\n", 1)[0]
            assert heading.startswith("# ")
            assert document.title == heading[2:].strip()
            assert document.removed == ()  # official documents get no furniture stripping
            assert document.text == path.read_text(encoding="utf-8").strip("\n")


# --- encodings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codec", "expected"),
    [
        (SIMPLIFIED, "gbk", "gb18030"),
        (SHORT_SIMPLIFIED, "gbk", "gb18030"),
        ("区域合作", "gbk", "gb18030"),
        (SIMPLIFIED + "\n㐀䶮𠀀：GB18030 四字节字符。", "gb18030", "gb18030"),
        (TRADITIONAL, "gbk", "gb18030"),  # GBK can hold traditional characters too
        (TRADITIONAL, "big5", "big5"),
        (SHORT_TRADITIONAL, "big5", "big5"),
        ("區域協同創新。", "big5", "big5"),
        (SIMPLIFIED, "utf-8", "utf-8"),
        (SHORT_TRADITIONAL, "utf-8", "utf-8"),
        (SIMPLIFIED, "utf-8-sig", "utf-8-sig"),
        ("区域合作", "utf-8-sig", "utf-8-sig"),
        (SIMPLIFIED, "utf-16", "utf-16"),
    ],
)
def test_encodings_round_trip(tmp_path: Path, text: str, codec: str, expected: str) -> None:
    path = _write(tmp_path, "doc.txt", text.encode(codec))
    document = load_document(path, "doc.txt")
    assert document.text == text
    assert document.encoding == expected
    assert "\ufeff" not in document.text


def test_other_legacy_encodings_fall_back_to_charset_normalizer(tmp_path: Path) -> None:
    text = "日本国民は、正当に選挙された国会における代表者を通じて行動し、われらとわれらの子孫のために。"
    document = load_document(_write(tmp_path, "ja.txt", text.encode("shift_jis")), "ja.txt")
    assert document.text == text
    assert document.encoding == "cp932"


def test_big5_bytes_also_decode_as_gb18030_so_order_alone_would_fail() -> None:
    """The trap the plausibility score exists for: GB18030 accepts Big5 bytes without an error."""
    for text in (TRADITIONAL, SHORT_TRADITIONAL):
        garbled = text.encode("big5").decode("gb18030")
        assert garbled != text


def test_crlf_and_cr_newlines_become_lf(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.txt", "第一行\r\n第二行\r\n\r\n第三行\r第四行\r\n".encode("gbk"))
    document = load_document(path, "doc.txt")
    assert document.text == "第一行\n第二行\n\n第三行\n第四行"
    assert document.encoding == "gb18030"


def test_text_is_kept_as_written(tmp_path: Path) -> None:
    """Full-width punctuation and indentation are display text: loading must not normalise them."""
    text = "　　推动长三角一体化发展（２０１９年），“创新”：合作！\n\n第二段\tA。"
    document = load_document(_write(tmp_path, "doc.txt", text.encode("utf-8")), "doc.txt")
    assert document.text == text


# --- titles and formats --------------------------------------------------------------------------


def test_txt_title_is_a_short_first_line_else_the_file_name(tmp_path: Path) -> None:
    short = _write(tmp_path, "short.txt", "区域合作简报\n\n正文。".encode())
    assert load_document(short, "short.txt").title == "区域合作简报"
    long_line = "很长的第一行" * 20 + "。\n第二行。"
    long = _write(tmp_path, "long-first-line.txt", long_line.encode())
    assert load_document(long, "long-first-line.txt").title == "long-first-line"


def test_markdown_title_is_the_first_level_one_heading(tmp_path: Path) -> None:
    path = _write(tmp_path, "doc.md", "前言一行\n\n## 小节\n\n# 真正的标题\n\n正文。\n".encode())
    assert load_document(path, "doc.md").title == "真正的标题"


HTML_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>长三角协同创新 - 某某网</title>
<style>p { color: red }</style><script>var tracking = "免责声明";</script></head>
<body>
<header><h1>某某网</h1><p>让一部分企业先学到真知识！</p></header>
<nav><a href="/">首页</a> <a href="/news">新闻</a></nav>
<article>
  <h1>长三角协同创新</h1>
  <p>2025-01-24 10:04:10</p>
  <p>长三角地区推动科技创新
     与产业创新深度融合。</p><!-- an HTML comment -->
  <h2>一、背景</h2>
  <p>第一句。<br>第二句。</p>
  <ul><li>上海</li><li>江苏</li></ul>
  <table><tr><th>地区</th><th>项目</th></tr><tr><td>浙江</td><td>12</td></tr></table>
  <p>免责声明：本站内容仅供学习交流。</p>
</article>
<aside>热门文章</aside>
<footer>版权所有 某某网</footer>
</body></html>
"""


def test_html_keeps_structure_and_drops_page_chrome(tmp_path: Path) -> None:
    document = load_document(_write(tmp_path, "page.html", HTML_PAGE.encode()), "page.html")
    assert document.title == "长三角协同创新"
    assert document.text == (
        "# 长三角协同创新\n\n"
        "长三角地区推动科技创新 与产业创新深度融合。\n\n"
        "## 一、背景\n\n"
        "第一句。\n第二句。\n\n"
        "上海\n\n江苏\n\n"
        "地区 项目\n\n浙江 12"
    )
    assert document.removed == ("2025-01-24 10:04:10", "免责声明：本站内容仅供学习交流。")
    for dropped in ("tracking", "color", "首页", "某某网", "热门文章", "版权所有", "an HTML comment"):
        assert dropped not in document.text


def test_html_title_falls_back_to_the_title_element(tmp_path: Path) -> None:
    page = "<html><head><title>区域合作_某某网</title></head><body><p>正文第一段内容，介绍区域合作。</p></body></html>"
    document = load_document(_write(tmp_path, "page.htm", page.encode("gbk")), "page.htm")
    assert document.title == "区域合作"
    assert document.text == "正文第一段内容，介绍区域合作。"
    assert document.encoding == "gb18030"


def test_html_article_header_is_content_but_the_site_header_is_not(tmp_path: Path) -> None:
    page = (
        "<body><header><a>某某网</a></header><main><article>"
        "<header><h1>区域协同创新</h1></header><p>正文。</p>"
        "<footer>作者单位：某研究院</footer></article></main><footer>网站备案号</footer></body>"
    )
    document = load_document(_write(tmp_path, "page.html", page.encode()), "page.html")
    assert document.title == "区域协同创新"
    assert document.text == "# 区域协同创新\n\n正文。\n\n作者单位：某研究院"


def _pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, with a correct xref table."""
    count = len(pages)
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(count))}] /Count {count} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        content = "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_pdf_text_of_every_page(tmp_path: Path) -> None:
    data = _pdf([["Regional Innovation Report", "Cooperation drives growth."], ["Second page text."]])
    document = load_document(_write(tmp_path, "report.pdf", data), "report.pdf")
    assert document.encoding == "pdf"
    assert document.title == "Regional Innovation Report"
    assert document.text == "Regional Innovation Report\nCooperation drives growth.\n\nSecond page text."
    assert document.source_hash == hashlib.sha256(data).hexdigest()


def test_pdf_without_text_layer_says_run_ocr(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "scan.pdf", _pdf([[], []])))
    assert "scan.pdf" in message and "no extractable text" in message and "OCR" in message


def test_password_protected_pdf(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    message = _load_error(path)
    assert "locked.pdf" in message and "password" in message


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    word = docx.Document()
    word.add_paragraph("封面说明文字。")
    word.add_heading("长三角协同创新报告", level=1)
    word.add_paragraph("推动科技创新与产业创新深度融合。")
    word.add_heading("一、总体要求", level=2)
    word.add_paragraph("")
    table = word.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "地区"
    table.cell(0, 1).text = "项目"
    table.cell(0, 2).text = "金额"
    table.cell(1, 0).text = "上海"
    merged = table.cell(1, 1).merge(table.cell(1, 2))
    merged.text = "待定"
    word.add_paragraph("结语。")
    path = tmp_path / "report.docx"
    word.save(str(path))

    document = load_document(path, "report.docx")
    assert document.encoding == "docx"
    assert document.title == "长三角协同创新报告"
    assert document.text == (
        "封面说明文字。\n\n"
        "# 长三角协同创新报告\n\n"
        "推动科技创新与产业创新深度融合。\n\n"
        "## 一、总体要求\n\n"
        "地区 | 项目 | 金额\n上海 | 待定\n\n"
        "结语。"
    )


def test_docx_title_style_counts_as_the_title(tmp_path: Path) -> None:
    import docx

    word = docx.Document()
    word.add_heading("年度工作报告", level=0)  # the Title style
    word.add_paragraph("正文。")
    path = tmp_path / "titled.docx"
    word.save(str(path))
    document = load_document(path, "titled.docx")
    assert document.title == "年度工作报告"
    assert document.text == "# 年度工作报告\n\n正文。"


# --- the registry --------------------------------------------------------------------------------

SRC = Path(__file__).parents[2] / "src" / "coopbot"


def test_registry_lists_every_format_in_the_order_users_see() -> None:
    assert SUPPORTED_SUFFIXES == (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv")


@pytest.mark.parametrize("suffixes", [(".new", ".txt"), (".CSV",), ("csv",)])
def test_a_suffix_registers_once_in_lower_case_with_its_dot(suffixes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="cannot register"):
        reader("other", *suffixes)(read_text)
    assert supported_suffixes() == SUPPORTED_SUFFIXES  # nothing half-registered


@pytest.mark.parametrize("module", ["ingest/documents.py", "web/knowledge_tab.py", "web/api.py"])
def test_uploads_ui_and_api_take_their_suffixes_from_the_registry(module: str) -> None:
    """They accept what ingestion reads: none spells out a suffix list of its own that could drift."""
    source = (SRC / module).read_text(encoding="utf-8")
    suffix = re.compile(rf"(?<![\w/])(?:{'|'.join(map(re.escape, SUPPORTED_SUFFIXES))})\b", re.IGNORECASE)
    strings = [node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)]
    assert [text for text in strings if isinstance(text, str) and suffix.search(text)] == []
    assert "SUPPORTED_SUFFIXES" in source


# --- CSV ---------------------------------------------------------------------------------------

PROJECTS = Path(__file__).parents[1] / "data" / "regional-cooperation-projects.csv"  # Excel-style: BOM, CRLF
PROJECTS_TEXT = (
    "项目名称：蓝鲸湾跨江通道，牵头城市：南通，合作城市：苏州,上海，总投资（亿元）：168.5，开工年份：2024，"
    "备注：双向六车道\n"
    "项目名称：云栖科创走廊，牵头城市：杭州，合作城市：湖州，总投资（亿元）：92，开工年份：2023\n"
    "项目名称：青鸟港口联运中心，牵头城市：宁波，合作城市：舟山，总投资（亿元）：55.3，开工年份：2025，"
    "备注：一期：集装箱码头 二期：铁路专用线"
)


def test_csv_rows_become_lines_of_header_value_pairs() -> None:
    document = load_document(PROJECTS, PROJECTS.name)
    assert document.text == PROJECTS_TEXT  # empty cells and blank rows left out, a multi-line cell on one line
    assert document.title == "regional-cooperation-projects"
    assert document.encoding == "utf-8-sig"


def test_gbk_csv(tmp_path: Path) -> None:
    data = PROJECTS.read_bytes().decode("utf-8-sig").encode("gbk")
    document = load_document(_write(tmp_path, "projects.csv", data), "projects.csv")
    assert document.text == PROJECTS_TEXT
    assert document.encoding == "gb18030"


def test_csv_cells_beyond_the_header_are_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, "ragged.csv", "城市,,人口\n上海,浦东,2487,超大城市\n杭州\n".encode())
    assert load_document(path, path.name).text == "城市：上海，浦东，人口：2487，超大城市\n城市：杭州"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        ("项目名称,牵头城市\r\n".encode(), "no data rows"),
        ("项目名称,牵头城市\n,\n ,  \n".encode(), "no data rows"),
    ],
)
def test_csv_without_rows(tmp_path: Path, content: bytes, expected: str) -> None:
    message = _load_error(_write(tmp_path, "empty.csv", content))
    assert "empty.csv" in message and expected in message and "remove it from the folder" in message


def test_csv_with_an_unclosed_quote(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "open.csv", '名称,备注\n示范园,"未闭合\n下一行\n'.encode()))
    assert "open.csv" in message and "cannot parse" in message and "quotes" in message


def test_missing_format_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)
    monkeypatch.setitem(sys.modules, "bs4", None)
    pdf_message = _load_error(_write(tmp_path, "report.pdf", _pdf([["Text."]])))
    html_message = _load_error(_write(tmp_path, "page.html", b"<p>text</p>"))
    for message in (pdf_message, html_message):
        assert "pip install 'coopbot[formats]'" in message


# --- bad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  ", "\u3000\u3000\n\n".encode()])
def test_empty_and_whitespace_only_files(tmp_path: Path, content: bytes) -> None:
    message = _load_error(_write(tmp_path, "blank.txt", content))
    assert "blank.txt" in message and ("empty" in message or "no text" in message)


def test_file_of_nothing_but_furniture(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "chrome.txt", "让一部分企业先学到真知识!\n\n1 阅读\n".encode()))
    assert "chrome.txt" in message and "page furniture" in message


@pytest.mark.parametrize("name", ["junk.txt", "junk.md", "junk.html"])
def test_binary_content_is_rejected(tmp_path: Path, name: str) -> None:
    rng = random.Random(0)
    data = b"PK\x03\x04\x00\x00" + bytes(rng.randrange(256) for _ in range(2000))
    message = _load_error(_write(tmp_path, name, data))
    assert name in message and "binary" in message


def test_undecodable_text(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "odd.txt", bytes(range(0x80, 0x100)) * 4))
    assert "odd.txt" in message and "encoding" in message and "UTF-8" in message


def test_corrupt_pdf(tmp_path: Path) -> None:
    rng = random.Random(1)
    message = _load_error(_write(tmp_path, "broken.pdf", bytes(rng.randrange(256) for _ in range(3000))))
    assert "broken.pdf" in message and "re-export" in message


def test_truncated_pdf(tmp_path: Path) -> None:
    data = _pdf([["Some text on the page."]])
    message = _load_error(_write(tmp_path, "cut.pdf", data[: len(data) // 3]))
    assert "cut.pdf" in message and ("re-export" in message or "no extractable text" in message)


def test_corrupt_docx(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "broken.docx", b"this is not a zip archive at all" * 10))
    assert "broken.docx" in message and "re-export" in message
    not_word = tmp_path / "other.docx"
    with zipfile.ZipFile(not_word, "w") as archive:
        archive.writestr("hello.txt", "a zip, but not a Word document")
    message = _load_error(not_word)
    assert "other.docx" in message and "re-export" in message


def test_unsupported_suffix(tmp_path: Path) -> None:
    message = _load_error(_write(tmp_path, "table.xlsx", b"PK\x03\x04 spreadsheet"))
    assert "table.xlsx" in message and "unsupported" in message and ".xlsx" in message and ".docx" in message


def test_missing_file(tmp_path: Path) -> None:
    message = _load_error(tmp_path / "gone.txt")
    assert "gone.txt" in message and "cannot read" in message


def test_random_bytes_only_ever_raise_load_error(tmp_path: Path) -> None:
    rng = random.Random(2)
    for attempt in range(60):
        suffix = SUPPORTED_SUFFIXES[attempt % len(SUPPORTED_SUFFIXES)]
        path = _write(
            tmp_path,
            f"fuzz{attempt}{suffix}",
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))),
        )
        try:
            document = load_document(path, path.name)
        except LoadError:
            continue
        assert document.text.strip()


# --- furniture rules -----------------------------------------------------------------------------


def _body(lines: int) -> list[str]:
    return [f"第{i}段：推动区域协同创新，促进科技成果转化。" for i in range(lines)]


def test_shipped_rules_cover_scraped_formats_only() -> None:
    furniture = default_furniture()
    assert furniture.formats == {"txt", "html"}
    assert {rule.name for rule in furniture.rules} >= {
        "slogan",
        "view-counter",
        "publication-time",
        "tag-before-title",
        "tags",
        "disclaimer",
        "course-name",
        "sign-up-prompt",
    }


def test_rules_match_fullwidth_and_halfwidth_variants() -> None:
    lines = [
        "让一部分企业先学到真知识！",
        "某页标题",
        "356 次阅读",
        *_body(20),
        "标签：创新",
        "免责声明：仅供参考。",
    ]
    text, removed = strip_furniture("\n".join(lines), default_furniture())
    assert removed == ("让一部分企业先学到真知识！", "356 次阅读", "标签：创新", "免责声明：仅供参考。")
    assert text.split("\n") == ["某页标题", *_body(20)]


def test_head_and_tail_rules_leave_the_middle_alone() -> None:
    middle = [
        "1 阅读",
        "免责声明：这句话在正文里，不是页脚。",
        "填写信息,即有专人与您沟通",
        "2025-01-24 10:04:10",
    ]
    lines = ["标题", *_body(20), *middle, *_body(20)]
    text, removed = strip_furniture("\n".join(lines), default_furniture())
    assert removed == ()
    assert text == "\n".join(lines)


def test_tag_line_only_goes_when_it_precedes_the_repeated_title() -> None:
    with_repeat = ["文章标题", "", "分类名", "", "文章标题", "", *_body(5)]
    text, removed = strip_furniture("\n".join(with_repeat), default_furniture())
    assert removed == ("分类名", "文章标题")
    assert text.split("\n") == ["文章标题", "", "", "", *_body(5)]
    without_repeat = ["文章标题", "", "副标题", "", *_body(5)]
    assert strip_furniture("\n".join(without_repeat), default_furniture())[1] == ()


def test_markdown_gets_no_furniture_stripping(tmp_path: Path) -> None:
    text = "# 标题\n\n1 阅读\n\n正文内容。\n\n免责声明：文件原文。"
    document = load_document(_write(tmp_path, "doc.md", text.encode()), "doc.md")
    assert document.text == text and document.removed == ()


def test_rules_file_is_validated() -> None:
    good = 'formats = ["txt"]\n[[rule]]\nname = "ok"\npattern = "x+"\nwhere = "tail"\n'
    assert parse_furniture(good).rules[0].name == "ok"
    with pytest.raises(ValueError, match=r"'broken'.*bad regular expression"):
        parse_furniture('[[rule]]\nname = "broken"\npattern = "(unclosed"\n')
    with pytest.raises(ValueError, match=r"'misplaced'.*where"):
        parse_furniture('[[rule]]\nname = "misplaced"\npattern = "x"\nwhere = "middle"\n')
    with pytest.raises(ValueError, match=r"'typo'.*unknown keys.*wher"):
        parse_furniture('[[rule]]\nname = "typo"\npattern = "x"\nwher = "head"\n')
    with pytest.raises(ValueError, match=r"rule #1.*name"):
        parse_furniture('[[rule]]\npattern = "x"\n')
    with pytest.raises(ValueError, match="formats"):
        parse_furniture('formats = ["xlsx"]\n')
    with pytest.raises(ValueError, match="TOML"):
        parse_furniture("[[rule]\n")


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("2025-01-24 10:04:10", "head"),
        ("发布时间：2025年1月24日", "head"),
        ("2024/03/05", "head"),
        ("356次浏览", "head"),
        ("阅读量：1024", "tail"),
        ("来源：新华网", "head"),
        ("（责任编辑：王五）", "tail"),
        ("关键词：创新 合作", "tail"),
        ("版权声明：转载请注明出处。", "tail"),
        ("Copyright © 2025 某某网 All Rights Reserved", "tail"),
        ("留下您的联系方式，顾问将尽快回复", "tail"),
        ("立即报名", "tail"),
        ("扫码关注公众号", "tail"),
        ("上一篇：长三角一体化的新进展", "tail"),
        ("分享到：", "tail"),
        ("【打印】【关闭】", "tail"),
        ("返回顶部", "tail"),
    ],
)
def test_general_rules_catch_other_sites_furniture(line: str, where: str) -> None:
    lines = [line, *_body(30)] if where == "head" else [*_body(30), line]
    text, removed = strip_furniture("\n".join(lines), default_furniture())
    assert removed == (line,)
    assert text.split("\n") == _body(30)


@pytest.mark.parametrize(
    "line",
    [
        "1. 政策引导",
        "2015年提出的创新驱动发展战略。",
        "近年来,经济高质量发展已成为各国经济政策的核心内容。",
        "总结",
        "第三条 国家鼓励科技成果转化。",
        "2026年主要预期目标是：国内生产总值增长5%左右。",
    ],
)
def test_ordinary_article_lines_are_never_furniture(line: str) -> None:
    for lines in ([line, *_body(3)], [*_body(3), line]):
        assert strip_furniture("\n".join(lines), default_furniture())[1] == ()


def test_a_docx_zip_bomb_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real .docx with one part that unpacks far beyond the limit (the directory's sizes are not trusted:
    the part is unpacked as a stream and stopped at the limit), and one with too many parts."""
    import docx

    from coopbot.ingest.loaders import docx as docx_loader

    word = docx.Document()
    word.add_paragraph("正文。")
    word.save(str(tmp_path / "base.docx"))
    monkeypatch.setattr(docx_loader, "MAX_UNPACKED_BYTES", 4 << 20)
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(tmp_path / "base.docx") as base, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for member in base.infolist():
            out.writestr(member, base.read(member))
        out.writestr("word/media/padding.bin", b"\0" * (16 << 20))  # 16 MB of zeros: about 16 KB packed
    assert bomb.stat().st_size < 200_000
    message = _load_error(bomb)
    assert "bomb.docx" in message and "unpacks to more than 4 MB" in message
    monkeypatch.setattr(docx_loader, "MAX_MEMBERS", 3)
    message = _load_error(_write(tmp_path, "parts.docx", (tmp_path / "base.docx").read_bytes()))
    assert "parts" in message and "at most 3" in message


def test_a_pdf_with_too_many_pages_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PdfWriter

    from coopbot.ingest.loaders import pdf as pdf_loader

    writer = PdfWriter()
    for _ in range(12):
        writer.add_blank_page(width=200, height=200)
    path = tmp_path / "book.pdf"
    with path.open("wb") as out:
        writer.write(out)
    monkeypatch.setattr(pdf_loader, "MAX_PAGES", 10)
    message = _load_error(path)
    assert "book.pdf" in message and "12 pages (at most 10)" in message and "split" in message
