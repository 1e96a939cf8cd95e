"""Structure-aware chunking of Chinese documents.

A document is cut into sections at its own headings (Markdown `#`, 第X编/篇/章/节, 一、, （一）, 1., （1）),
each section into sentences, and consecutive sentences are packed into chunks. A chunk never spans two
sections and never cuts a sentence that fits in a chunk, so a passage shown to a user reads as written;
its heading path (document title first) travels with it into `Chunk.embed_text`. Sentences end where
`text.sentences` says, the same ends the answer composer quotes.

No chunk is longer than `size + min_size` characters, whatever the punctuation: a "sentence" longer than
that (a file without punctuation) is cut into pieces of at most `size`, so neither the index nor an
answer that quotes a passage can grow with the file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from coopbot.schema import Chunk, Document, embed_text
from coopbot.text.sentences import SENTENCE_END, line_spans, trim_span

_CN_DIGITS = "一二三四五六七八九十百千零〇两"

# "## 第一章　总则" -> marks "##" (the level) and the rest of the line (see `_without_closing_marks`).
_MARKDOWN_HEADING = re.compile(r"(#{1,6})[ \t]+(.+)")

# Numbered headings from the shallowest to the deepest; the level of `_NUMBERED_HEADINGS[i]` is
# `_FIRST_NUMBERED_LEVEL + i`, below every Markdown level (1-6).
_NUMBERED_HEADINGS: tuple[re.Pattern[str], ...] = (
    re.compile(rf"^第[{_CN_DIGITS}\d]+[编篇]"),  # 第一篇　… (part)
    re.compile(rf"^第[{_CN_DIGITS}\d]+章"),  # 第一章　… (chapter)
    re.compile(rf"^第[{_CN_DIGITS}\d]+节"),  # 第一节　… (section)
    re.compile(rf"^[{_CN_DIGITS}]+、"),  # 一、…
    re.compile(rf"^[（(][{_CN_DIGITS}]+[）)]"),  # （一）… or (一)…
    re.compile(r"^\d+[.．、](?!\d)"),  # 1. … / 1、… but not a decimal such as 3.5
    re.compile(r"^[（(]\d+[）)]"),  # （1）…
)
_FIRST_NUMBERED_LEVEL = 7
_ITEM_LEVEL = _FIRST_NUMBERED_LEVEL + 3  # 一、 and deeper: the numbering that law articles use for list items
_LEAD_LEVELS = (_ITEM_LEVEL, _ITEM_LEVEL + 1)  # 一、 and （一）: may open a paragraph with a lead sentence

# Unnumbered lines that head a whole part of a document (preface, conclusion, appendix, glossary); they sit
# at the level of 编/篇 so that they close every numbered heading before them.
_NAMED_HEADING = re.compile(rf"^(?:前言|引言|序言|总结|结语|结束语|名词解释|(?:附件|附录)\s*[{_CN_DIGITS}\d]*[:：]?)$")

# A law article ("第十二条 …") is body text, never a heading; a chunk prefers to start at one.
_ARTICLE = re.compile(rf"^第[{_CN_DIGITS}\d]+条")

# The line that opens a table of contents: its entries look like headings but have no body.
_TABLE_OF_CONTENTS = re.compile(r"^目\s*录$")

# Where a sentence too long for any chunk is cut: after a clause mark, else before a space, else anywhere.
_CLAUSE_MARKS = "，、,：:"
_SPACES = re.compile(r"\s+")

# A heading is a title, not a paragraph: the longest in knowledge/ has 50 characters.
_HEADING_MAX = 60
# A line ending like this is prose, not a standalone heading.
_PROSE_ENDINGS = tuple("。！？；!?;，,、")


@dataclass(frozen=True)
class Section:
    """Body text under one heading path: `doc.text[start:end]`, trimmed, free of standalone heading lines."""

    heading_path: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    in_body: bool  # a lead sentence ("（一）着力扩大内需。……"): its line stays in the section body


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a sentence too long for any chunk) with the boundary kind before it."""

    start: int
    end: int
    opens_paragraph: bool
    opens_article: bool
    whole: bool  # False for a piece of a cut sentence: never repeated as overlap


def _classify(line: str, *, in_article: bool, continues_list: bool) -> _Heading | None:
    """The heading a stripped line opens, or None for body text.

    A numbered line is a standalone heading when it is short and does not end like prose. A 一、/（一） line
    that starts with a short sentence ("（一）着力扩大内需。……") is a lead heading: the lead names the
    topic of the paragraphs that follow, but the line stays body text so nothing is lost. Inside a law
    article or after a line ending in ；, 一、 and deeper numbering are list items, never headings.
    """
    markdown = _MARKDOWN_HEADING.match(line)
    if markdown:
        return _Heading(len(markdown.group(1)), _without_closing_marks(markdown.group(2)), in_body=False)
    if _NAMED_HEADING.match(line):
        return _Heading(_FIRST_NUMBERED_LEVEL, line, in_body=False)
    level = next(
        (_FIRST_NUMBERED_LEVEL + i for i, pattern in enumerate(_NUMBERED_HEADINGS) if pattern.match(line)),
        None,
    )
    if level is None or (level >= _ITEM_LEVEL and (in_article or continues_list)):
        return None
    if len(line) <= _HEADING_MAX and not line.endswith(_PROSE_ENDINGS):
        return _Heading(level, line, in_body=False)
    if level in _LEAD_LEVELS:
        lead = SENTENCE_END.search(line)
        if lead and lead.end() <= _HEADING_MAX and not lead.group().startswith("；"):
            return _Heading(level, line[: lead.end()], in_body=True)
    return None


def _without_closing_marks(text: str) -> str:
    """A Markdown heading's text without trailing blanks and its optional closing run ("总则 ##" -> "总则").

    String operations, not a lazy regex such as `(.+?)(?:[ \t]+#+)?[ \t]*$`: that takes quadratic time on
    a heading line full of spaces.
    """
    text = text.rstrip(" \t")
    before_marks = text.rstrip("#")
    heading = before_marks.rstrip(" \t")
    return heading if before_marks != text and heading != before_marks and heading else text


def split_sections(doc: Document) -> list[Section]:
    """Cut a document at its headings; each section carries the path from the title to its heading.

    Headings form a hierarchy: a heading closes the open headings of the same or a deeper level. A line
    equal to the title (the Markdown `# title` too) resets the path to the title. A table of contents
    (a 目录 line and the heading-like lines after it) is dropped, so its entries do not become headings.
    In a list of lead paragraphs that are all one paragraph long ("（一）…。……" then "（二）…。……"), the
    text after the last item belongs to the parent heading, not to that item. Sections whose body is empty
    (a heading right before another heading) are left out.
    """
    text = doc.text
    root = (doc.title,) if doc.title else ()
    sections: list[Section] = []
    stack: list[_Heading] = []
    body_start = 0
    in_article = False
    in_contents = False
    first_entry: str | None = None  # the table of contents ends where its first entry comes back
    previous = ""  # the last non-blank line
    paragraphs = 0  # body lines since the last heading (a lead line is one)
    # How many paragraphs the earlier items of the open list of lead headings have (a set: a long list costs
    # no more to check than a short one).
    earlier_items: set[int] = set()

    def close(end: int) -> None:
        start, stop = trim_span(text, body_start, end)
        if start < stop:
            sections.append(Section(root + tuple(h.text for h in stack), start, stop))

    for line_start, line_end in line_spans(text, 0, len(text)):
        line = text[line_start:line_end].strip()
        if not line:
            continue
        heading = _classify(line, in_article=in_article, continues_list=previous.endswith("；"))
        previous = line
        if in_contents:
            if heading is not None and not heading.in_body and line != first_entry:
                first_entry = first_entry or line
                body_start = line_end
                continue
            in_contents = False
        if _TABLE_OF_CONTENTS.match(line):
            close(line_start)
            in_contents, first_entry, body_start = True, None, line_end
        elif doc.title and (line == doc.title or (heading is not None and heading.text == doc.title)):
            close(line_start)
            stack.clear()
            in_article, body_start, earlier_items = False, line_end, set()
        elif heading is not None:
            close(line_start)
            top = stack[-1] if stack else None
            next_item = heading.in_body and top is not None and top.in_body and top.level == heading.level
            if next_item:
                earlier_items.add(paragraphs)
            else:
                earlier_items = set()
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
            body_start = line_start if heading.in_body else line_end
            in_article = False
            paragraphs = 1 if heading.in_body else 0
        else:
            if earlier_items == {1} and paragraphs == 1:
                close(line_start)  # a list of one-paragraph items has ended: back to the parent heading
                stack.pop()
                body_start, earlier_items = line_start, set()
            in_article = in_article or bool(_ARTICLE.match(line))
            paragraphs += 1
    close(len(text))
    return sections


def _cut(text: str, start: int, limit: int) -> int:
    """Where to end a piece of an overlong sentence that starts at `start` and may not pass `limit`.

    After the last clause mark (，、：) within reach, else before the last run of spaces, else at `limit`.
    """
    clause = max(text.rfind(mark, start, limit) for mark in _CLAUSE_MARKS)
    if clause >= 0:
        return clause + 1
    spaces = [run.start() for run in _SPACES.finditer(text, start, limit + 1)]
    return spaces[-1] if spaces else limit


def _pieces(text: str, sentence: _Unit, size: int) -> list[_Unit]:
    """Cut a sentence too long for any chunk into pieces of at most `size` characters (see `_cut`).

    Each piece ends as late as it can, so a sentence whose clauses are short is cut into runs of
    whole clauses; only a stretch of `size` characters without a clause mark or space is cut mid-word.
    """
    spans: list[tuple[int, int]] = []
    start = sentence.start
    while sentence.end - start > size:
        cut = _cut(text, start, start + size)
        spans.append(trim_span(text, start, cut))
        start = trim_span(text, cut, sentence.end)[0]
    spans.append((start, sentence.end))
    return [
        _Unit(start, end, sentence.opens_paragraph and i == 0, sentence.opens_article and i == 0, False)
        for i, (start, end) in enumerate(spans)
    ]


def _units(text: str, section: Section, size: int, longest: int) -> list[_Unit]:
    """The sentences of a section; every line break ends a paragraph, and so a sentence.

    A sentence longer than `longest` (the longest chunk allowed) comes as pieces of at most `size`.
    """
    units: list[_Unit] = []
    for line_start, line_end in line_spans(text, section.start, section.end):
        start, end = trim_span(text, line_start, line_end)
        article = bool(_ARTICLE.match(text[start:end]))
        stops = [m.end() for m in SENTENCE_END.finditer(text, start, end)]
        if not stops or stops[-1] < end:
            stops.append(end)  # the paragraph ends without a terminator
        opens_paragraph = True
        for stop in stops:
            sentence = _Unit(*trim_span(text, start, stop), opens_paragraph, opens_paragraph and article, True)
            start = stop
            if sentence.start == sentence.end:
                continue
            opens_paragraph = False
            if sentence.end - sentence.start > longest:
                units.extend(_pieces(text, sentence, size))
            else:
                units.append(sentence)
    return units


def _best_break(units: list[_Unit], first: int, last: int, size: int, min_size: int) -> int:
    """The unit after which to end a chunk holding units[first..last] of new text (more follow).

    A break before a law article is best, then a paragraph break, then any sentence break, as long as
    the chunk keeps enough new text (min_size before an article, half a chunk before a paragraph);
    among equals the latest break wins, so chunks stay close to `size`.
    """

    def rank(b: int) -> int:
        following = units[b + 1]
        kind = 2 if following.opens_article else 1 if following.opens_paragraph else 0
        floor = (0, size // 2, min_size)[kind]
        return kind if units[b].end - units[first].start >= floor else -1

    return max(range(first, last + 1), key=lambda b: (rank(b), b))


def _pack(units: list[_Unit], size: int, min_size: int, overlap: int) -> list[tuple[int, int]]:
    """Group a section's units into chunks: (first unit, last unit) including the overlap.

    Each chunk after the first repeats up to `overlap` characters of whole sentences from the end of the
    previous one, except before a law article (an article is a self-contained unit). A small tail merges
    into the previous chunk when the result stays within size + min_size.
    """
    spans: list[tuple[int, int, int]] = []  # (first unit with overlap, first new unit, last unit)
    begin = first = 0
    while first < len(units):
        while begin < first and units[first].end - units[begin].start > size:
            begin += 1  # drop overlap that would push the chunk's first new sentence past size
        last = first
        while last + 1 < len(units) and units[last + 1].end - units[begin].start <= size:
            last += 1
        if last + 1 < len(units):
            last = _best_break(units, first, last, size, min_size)
        spans.append((begin, first, last))
        begin = first = last + 1
        if first < len(units) and not units[first].opens_article:
            while (
                begin - 1 >= spans[-1][1]
                and units[begin - 1].whole
                and units[last].end - units[begin - 1].start <= overlap
            ):
                begin -= 1
    if len(spans) >= 2:
        (prev_begin, prev_first, _), (_, tail_first, tail_last) = spans[-2:]
        tail = units[tail_last].end - units[tail_first].start
        if tail < min_size and units[tail_last].end - units[prev_begin].start <= size + min_size:
            spans[-2:] = [(prev_begin, prev_first, tail_last)]
    return [(begin, last) for begin, _, last in spans]


def chunk_document(doc: Document, *, size: int = 450, min_size: int = 150, overlap: int = 80) -> list[Chunk]:
    """Cut a document into chunks that never cross a heading and are at most `size + min_size` characters.

    A sentence is cut only when it is longer than that bound (see `_pieces`).

    Ids derive from the document id and the content hash (heading path + text), so an unchanged passage
    keeps its id across runs and is not embedded again; a repeat of the same content within the document
    gets a suffix (-2, -3, ...) so ids stay unique.
    """
    if size < 1 or min_size < 0 or overlap < 0:
        raise ValueError(f"bad chunk sizes: size={size} (>= 1), min_size={min_size} (>= 0), overlap={overlap} (>= 0)")
    doc_key = hashlib.sha1(doc.doc_id.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for section in split_sections(doc):
        units = _units(doc.text, section, size, size + min_size)
        for begin, last in _pack(units, size, min_size, overlap):
            start, end = units[begin].start, units[last].end
            text = doc.text[start:end]
            content_hash = hashlib.sha256(embed_text(section.heading_path, text).encode("utf-8")).hexdigest()
            base = f"{doc_key}-{content_hash[:20]}"
            seen[base] = seen.get(base, 0) + 1
            chunks.append(
                Chunk(
                    chunk_id=base if seen[base] == 1 else f"{base}-{seen[base]}",
                    doc_id=doc.doc_id,
                    doc_title=doc.title,
                    heading_path=section.heading_path,
                    text=text,
                    char_start=start,
                    char_end=end,
                    content_hash=content_hash,
                    ordinal=len(chunks),
                )
            )
    return chunks
