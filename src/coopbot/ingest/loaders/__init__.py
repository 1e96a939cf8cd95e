"""Read one source file into a cleaned `Document`: decode, extract text, strip page furniture, title.

Everything that can go wrong with a user's file becomes a `LoadError` whose message names the file,
says what is wrong and what to do, so ingestion can skip the file and report it.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coopbot.schema import Document
from coopbot.text.normalise import for_matching, strip_control

if TYPE_CHECKING:
    from docx.table import Table

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
_FORMATS = {
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
_MAX_TITLE_CHARS = 60
_FORMATS_EXTRA = "pip install 'coopbot[formats]'"


class LoadError(Exception):
    """A file coopbot cannot use; the message says what is wrong and what to do about it."""


def load_document(path: Path, doc_id: str) -> Document:
    """Read `path` and return its cleaned text, title and provenance.

    Raises `LoadError` (and nothing else) for any file that cannot be used: unsupported type, empty,
    binary, undecodable, corrupt, or a PDF without a text layer.
    """
    suffix = path.suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise LoadError(
            f"{path.name}: unsupported file type {suffix or '(no suffix)'}; coopbot reads "
            f"{', '.join(SUPPORTED_SUFFIXES)}. Export it to one of these, or move it out of the folder."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(
            f"{path.name}: cannot read the file ({exc.strerror}); check that it exists and is readable."
        ) from exc
    if not data.strip():
        raise LoadError(f"{path.name}: the file is empty; add its text or remove it from the folder.")

    heading_title: str | None = None
    if fmt == "pdf":
        text, encoding = _read_pdf(data, path.name), "pdf"
    elif fmt == "docx":
        text, encoding = _read_docx(data, path.name), "docx"
    else:
        text, encoding = _decode(data, path.name)
        if fmt == "html":
            text, heading_title = _read_html(text)
    text = _normalise_lines(text)

    removed: tuple[str, ...] = ()
    furniture = default_furniture()
    if fmt in furniture.formats:
        text, removed = strip_furniture(text, furniture)
    text = _tidy_blank_lines(text)
    if not text:
        what = "only page furniture" if removed else "only whitespace"
        raise LoadError(f"{path.name}: the file has no text ({what}); add its text or remove it from the folder.")

    return Document(
        doc_id=doc_id,
        path=path,
        title=_title(text, fmt, heading_title, path),
        text=text,
        source_hash=hashlib.sha256(data).hexdigest(),
        encoding=encoding,
        removed=removed,
    )


# --- titles and line clean-up ------------------------------------------------------------------

_HEADING = re.compile(r"(#{1,6})[ \t]+(.+?)[ \t#]*")


def _title(text: str, fmt: str, heading_title: str | None, path: Path) -> str:
    """The document's own title where its format marks one, else a short first line, else the file name."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if fmt in ("md", "html", "docx"):
        # md: the first `# ` heading; html: the first <h1>; docx: the first Heading/Title paragraph.
        levels = 6 if fmt == "docx" else 1
        for line in lines:
            match = _HEADING.fullmatch(line)
            if match and len(match.group(1)) <= levels:
                return match.group(2)
    if heading_title:
        return heading_title
    if lines and len(lines[0]) <= _MAX_TITLE_CHARS:
        return lines[0]
    return path.stem


def _normalise_lines(text: str) -> str:
    """One newline convention (\\n) and no control characters: CRLF, CR, form feeds become \\n."""
    return strip_control("\n".join(text.splitlines()))


def _tidy_blank_lines(text: str) -> str:
    """Drop trailing spaces, at most one blank line in a row, none at the start or end.

    Removing furniture leaves gaps; collapsing them keeps the text readable and chunk offsets tidy.
    """
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


# --- page furniture ----------------------------------------------------------------------------

_WHERE = frozenset({"head", "tail", "anywhere"})
_RULE_KEYS = frozenset({"name", "pattern", "where", "before_repeated_title"})


@dataclass(frozen=True)
class FurnitureRule:
    """One kind of furniture line: a whole-line regex over the `for_matching` form, and where it may be."""

    name: str
    regex: re.Pattern[str]
    where: frozenset[str]
    before_repeated_title: bool = False

    def applies_at(self, index: int, head: set[int], tail: set[int]) -> bool:
        """Whether line `index` lies where this rule looks."""
        return (
            "anywhere" in self.where
            or ("head" in self.where and index in head)
            or ("tail" in self.where and index in tail)
        )


@dataclass(frozen=True)
class Furniture:
    """The furniture rules and the formats (scraped pages) they apply to."""

    formats: frozenset[str]
    window: int
    rules: tuple[FurnitureRule, ...]


def parse_furniture(source: str, origin: str = "furniture.toml") -> Furniture:
    """Parse and validate a furniture rules file; a mistake raises ValueError naming the rule."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML: {exc}") from exc
    formats = data.get("formats", [])
    window = data.get("window", 15)
    if not isinstance(formats, list) or not all(f in _FORMATS.values() for f in formats):
        raise ValueError(f"{origin}: formats must be a list drawn from {sorted(set(_FORMATS.values()))}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"{origin}: window must be a positive whole number of lines")
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise ValueError(f"{origin}: rules must be [[rule]] tables")
    return Furniture(frozenset(formats), window, tuple(_parse_rule(r, i, origin) for i, r in enumerate(rules)))


def _parse_rule(raw: Any, index: int, origin: str) -> FurnitureRule:
    """Validate one [[rule]] table, naming the rule (or its position) in every complaint."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"{origin}: rule {name!r}" if isinstance(name, str) else f"{origin}: rule #{index + 1}"
    if not isinstance(raw, dict) or not isinstance(name, str) or not name:
        raise ValueError(f"{label}: every rule needs a non-empty name")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ValueError(f"{label}: unknown keys {sorted(unknown)}; allowed are {sorted(_RULE_KEYS)}")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{label}: needs a pattern (a regular expression matching a whole line)")
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{label}: bad regular expression {pattern!r}: {exc}") from exc
    where_raw = raw.get("where", "anywhere")
    where = frozenset([where_raw] if isinstance(where_raw, str) else where_raw)
    if not where or not where <= _WHERE:
        raise ValueError(f"{label}: where must be one of {sorted(_WHERE)} or a list of them, not {where_raw!r}")
    before_title = raw.get("before_repeated_title", False)
    if not isinstance(before_title, bool):
        raise ValueError(f"{label}: before_repeated_title must be true or false")
    return FurnitureRule(name, regex, where, before_title)


@functools.cache
def default_furniture() -> Furniture:
    """The rules shipped in `coopbot/data/furniture.toml`, read once."""
    resource = resources.files("coopbot") / "data" / "furniture.toml"
    return parse_furniture(resource.read_text(encoding="utf-8"), origin=str(resource))


def strip_furniture(text: str, furniture: Furniture) -> tuple[str, tuple[str, ...]]:
    """Remove furniture lines from `text`; return the rest and the removed lines (stripped), in order.

    Head and tail rules only look at the first and last `window` non-empty lines, so article text in
    the middle that happens to look like furniture stays. A title repeated within the head is kept
    once, at its first occurrence.
    """
    lines = text.split("\n")
    keys = [for_matching(line).strip() for line in lines]
    filled = [i for i, key in enumerate(keys) if key]
    head, tail = set(filled[: furniture.window]), set(filled[-furniture.window :])
    plain = [rule for rule in furniture.rules if not rule.before_repeated_title]
    before_title = [rule for rule in furniture.rules if rule.before_repeated_title]

    removed = {i for i in filled if _matches(plain, i, keys[i], head, tail)}
    repeats = _repeated_title(keys, [i for i in filled if i in head and i not in removed])
    removed |= repeats
    for position, i in enumerate(filled[:-1]):
        if i not in removed and filled[position + 1] in repeats and _matches(before_title, i, keys[i], head, tail):
            removed.add(i)

    kept = "\n".join(line for i, line in enumerate(lines) if i not in removed)
    return kept, tuple(lines[i].strip() for i in sorted(removed))


def _matches(rules: Iterable[FurnitureRule], index: int, key: str, head: set[int], tail: set[int]) -> bool:
    return any(rule.applies_at(index, head, tail) and rule.regex.fullmatch(key) for rule in rules)


def _repeated_title(keys: list[str], head_lines: list[int]) -> set[int]:
    """Head lines that repeat the first remaining head line (the page title), heading marks ignored."""
    if not head_lines:
        return set()
    title = keys[head_lines[0]].lstrip("#").strip()
    if len(title) > _MAX_TITLE_CHARS:
        return set()
    return {i for i in head_lines[1:] if keys[i].lstrip("#").strip() == title}


# --- decoding ----------------------------------------------------------------------------------

# The 500 most frequent characters of modern Chinese (Jun Da's character frequency list; its first
# 100 are also charset_normalizer's), then their traditional forms. A correct decoding of Chinese
# hits these about three times in four; bytes decoded with the wrong codec rarely do.
_COMMON_HANZI = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后"
    "作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因"
    "只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应"
    "战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿"
    "原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太"
    "量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界"
    "达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今"
    "切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存"
    "未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官"
    "火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历"
    "首医局突专费号尽另周较注语仅考落青随选列"
    # their traditional forms (OpenCC s2tw)
    "這個們來為國說時會對於著過發後裡種經麼學現當沒動還進樣開從實軍無與長機關點業將兩間問並應戰頭體見"
    "產話內給門兒東聲員論處義幾認條氣題爾別變總電數報結務場計資許統區隊決馬書則聽卻達強難權設記類據邊"
    "張該規萬覺術領確傳師觀讓識帶導爭運飛風幹聯組濟車親極辦議證轉準遠臺單羅愛擊備連調質團價黨華級離況"
    "亞請際約復線斷滿視須寫稱嗎輕農裝廣顯標談圖歷醫專費號盡較語僅隨選複乾"
)
_CJK_PUNCTUATION = frozenset("，。、；：？！“”‘’（）《》〈〉【】〔〕「」『』—…·　")
_CJK_CODECS = ("gb18030", "big5", "cp950", "big5hkscs")  # ties go to the earlier codec
_CHINESE_CODECS = frozenset({*_CJK_CODECS, "gb2312", "gbk", "hz"})
_PLAUSIBLE = 1.5  # mean score above which a CJK decoding is trusted without asking charset_normalizer


def _decode(data: bytes, name: str) -> tuple[str, str]:
    """Decode a text file: BOM, then strict UTF-8, then the most plausible Chinese legacy codec.

    Trying codecs in order is not enough: Big5 bytes usually also decode as GB18030 (and vice versa)
    without error, into rare or garbled characters. So every Chinese codec that decodes is scored by
    how plausible its characters are, and charset_normalizer is the fallback for anything else.
    """
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[len(codecs.BOM_UTF8) :], "utf-8", name), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", name), "utf-16"
    if b"\x00" in data:
        raise LoadError(
            f"{name}: looks binary, not text (it contains NUL bytes). If it is a document, export it as "
            "UTF-8 text, or give it its real suffix (.pdf, .docx)."
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass

    best_score, best = 0.0, None
    for codec in _CJK_CODECS:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        score = _plausibility(text)
        if best is None or score > best_score:  # strictly greater: ties keep the earlier codec
            best_score, best = score, (text, codec)
    if best is not None and best_score >= _PLAUSIBLE:
        return best

    # Not convincingly Chinese: maybe another language's legacy encoding (Shift_JIS, EUC-KR, cp1252).
    guess = _charset_normalizer_guess(data)
    if guess is not None and guess[1] not in _CHINESE_CODECS:
        return guess
    if best is not None and best_score > 0:
        return best
    raise LoadError(
        f"{name}: cannot tell the text encoding (it is not UTF-8, GB18030/GBK or Big5); "
        "open it in an editor and save it as UTF-8."
    )


def _strict(data: bytes, codec: str, name: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"{name}: starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()} "
            f"(byte {exc.start}); open it in an editor and save it as UTF-8."
        ) from exc


def _charset_normalizer_guess(data: bytes) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    match = from_bytes(data).best()
    return None if match is None else (str(match), str(match.encoding).replace("_", "-"))


@functools.cache
def _known_hanzi() -> frozenset[str]:
    """GB2312 level-1 and Big5 common characters: ordinary text, though not among the most frequent."""
    gb2312 = _decode_grid("gb2312", range(0xB0, 0xD8), range(0xA1, 0xFF))
    big5 = _decode_grid("big5", range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)])
    return frozenset(gb2312 | big5)


def _decode_grid(codec: str, leads: Iterable[int], trails: Iterable[int]) -> set[str]:
    trail_bytes = list(trails)
    chars = set()
    for lead in leads:
        for trail in trail_bytes:
            try:
                chars.add(bytes((lead, trail)).decode(codec))
            except UnicodeDecodeError:
                continue
    return chars


def _plausibility(text: str) -> float:
    """Mean score of the non-ASCII characters: high for real Chinese, low for mis-decoded bytes.

    Frequent characters and CJK punctuation score 3, other everyday characters 1, rare ideographs 0,
    and what mis-decoding produces (private-use, kana, box drawing, Cyrillic, ...) -3.
    """
    known = _known_hanzi()
    total = count = 0
    for ch in text:
        if ch.isascii():
            continue
        count += 1
        if ch in _COMMON_HANZI or ch in _CJK_PUNCTUATION or "\uff01" <= ch <= "\uff5e":
            total += 3
        elif ch in known:
            total += 1
        elif not (unicodedata.category(ch) == "Lo" and "\u3400" <= ch <= "\u9fff"):
            total -= 3
    return total / count if count else 0.0


# --- formats that need an optional package -----------------------------------------------------


def _missing(package: str, suffix: str) -> LoadError:
    return LoadError(f"reading {suffix} files needs the {package} package: {_FORMATS_EXTRA}")


_HTML_DROPPED = ["head", "script", "style", "noscript", "template", "nav", "aside"]
_HTML_PAGE_CHROME = ["header", "footer"]  # the site's, not an <article>'s own header with its <h1>
_HTML_HEADINGS = re.compile(r"h[1-6]")
_HTML_BLOCKS = [
    "p", "div", "section", "article", "main", "blockquote", "pre", "ul", "ol", "dl", "table", "figure",
    "figcaption", "form", "fieldset", "address", "hr",
]  # fmt: skip
_HTML_LINES = ["li", "tr", "dt", "dd", "caption"]
_HTML_CELLS = ["td", "th"]
_TITLE_SITE_SUFFIX = re.compile(r"\s+[-|–—]\s+|_")


def _read_html(markup: str) -> tuple[str, str | None]:
    """Visible article text with block structure kept as lines, and the page's <title>.

    Headings become Markdown `#` lines so the chunker sees the structure; paragraphs are separated
    by blank lines; source line breaks inside a paragraph are only whitespace, as in a browser.
    """
    try:
        from bs4 import BeautifulSoup
        from bs4.element import NavigableString
    except ImportError as exc:
        raise _missing("beautifulsoup4", ".html") from exc

    soup = BeautifulSoup(markup, "html.parser")
    page_title = None
    if soup.title is not None:
        page_title = _TITLE_SITE_SUFFIX.split(soup.title.get_text(" ", strip=True))[0].strip() or None
    for tag in soup.find_all(_HTML_DROPPED):
        tag.decompose()
    for tag in soup.find_all(_HTML_PAGE_CHROME):
        if tag.find_parent(["article", "main"]) is None:
            tag.decompose()
    for node in list(soup.find_all(string=True)):
        if type(node) is NavigableString:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
        else:  # comments, doctype, CDATA, processing instructions
            node.extract()
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(_HTML_HEADINGS):
        heading = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n\n{'#' * int(tag.name[1])} {heading}\n\n" if heading else "")
    for names, before, after in (
        (_HTML_BLOCKS, "\n\n", "\n\n"),
        (_HTML_LINES, "\n", "\n"),
        (_HTML_CELLS, " ", " "),
    ):
        for tag in soup.find_all(names):
            tag.insert_before(before)
            tag.insert_after(after)
    lines = (" ".join(line.split()) for line in soup.get_text().split("\n"))
    return "\n".join(lines), page_title


def _read_pdf(data: bytes, name: str) -> str:
    """The text layer of every page, pages separated by a blank line."""
    try:
        from pypdf import PasswordType, PdfReader
    except ImportError as exc:
        raise _missing("pypdf", ".pdf") from exc

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise LoadError(f"{name}: the PDF is password-protected; save an unprotected copy and ingest that.")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files; all mean the same to the user
        raise LoadError(
            f"{name}: cannot read this PDF, it looks damaged ({type(exc).__name__}: {exc}); "
            "re-export the file from its original application and try again."
        ) from exc
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise LoadError(
            f"{name}: the PDF has no extractable text (a scanned PDF?); run OCR first "
            "(e.g. ocrmypdf) or use a text version of the document."
        )
    return text


_DOCX_HEADING_STYLE = re.compile(r"(?:heading|标题)\s*([1-9])", re.IGNORECASE)
_DOCX_TITLE_STYLE = re.compile(r"title|标题", re.IGNORECASE)


def _read_docx(data: bytes, name: str) -> str:
    """Paragraphs and tables in document order; Heading N paragraphs become `#`*N lines."""
    try:
        from docx import Document as open_docx
        from docx.table import Table
    except ImportError as exc:
        raise _missing("python-docx", ".docx") from exc

    blocks: list[str] = []
    try:
        for block in open_docx(io.BytesIO(data)).iter_inner_content():
            if isinstance(block, Table):
                blocks.append("\n".join(_docx_rows(block)))
            else:
                blocks.append(_docx_paragraph(block.text, block.style.name if block.style else ""))
    except Exception as exc:  # python-docx/zipfile/lxml raise many types for damaged files
        raise LoadError(
            f"{name}: cannot read this Word file, it looks damaged or is not a .docx "
            f"({type(exc).__name__}: {exc}); re-export the file as .docx from Word or LibreOffice."
        ) from exc
    return "\n\n".join(block for block in blocks if block.strip())


def _docx_paragraph(text: str, style: str) -> str:
    text = text.strip()
    if not text:
        return ""
    heading = _DOCX_HEADING_STYLE.fullmatch(style)
    if heading:
        return f"{'#' * min(int(heading.group(1)), 6)} {text}"
    if _DOCX_TITLE_STYLE.fullmatch(style):
        return f"# {text}"
    return text


def _docx_rows(table: Table) -> Iterator[str]:
    """One line per table row, cells joined by " | "; a merged cell counts once."""
    for row in table.rows:
        cells, column = row.cells, 0
        texts: list[str] = []
        while column < len(cells):
            text = " ".join(cells[column].text.split())
            if text:
                texts.append(text)
            column += max(cells[column].grid_span, 1)  # row.cells repeats a merged cell per grid column
        if texts:
            yield " | ".join(texts)
