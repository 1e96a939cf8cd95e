"""The path every file takes: the registry's reader for its suffix, then the same clean-up and titling.

Line endings are unified, page furniture is stripped (from the formats furniture.toml names), blank
lines are tidied and a title chosen, so every format comes out as the same kind of `Document`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from coopbot.ingest.loaders.furniture import MAX_TITLE_CHARS, default_furniture, strip_furniture
from coopbot.ingest.loaders.registry import Extracted, LoadError, Reader, reader_for
from coopbot.schema import Document
from coopbot.text.normalise import strip_control


def load_document(path: Path, doc_id: str) -> Document:
    """Read `path` and return its cleaned text, title and provenance.

    Raises `LoadError` (and nothing else) for any file that cannot be used: unsupported type, empty,
    binary, undecodable, corrupt, or a PDF without a text layer.
    """
    entry = reader_for(path.suffix.lower(), path.name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(
            f"{path.name}: cannot read the file ({exc.strerror}); check that it exists and is readable."
        ) from exc
    if not data.strip():
        raise LoadError(f"{path.name}: the file is empty; add its text or remove it from the folder.")

    extracted = entry.read(data, path.name)
    text = _normalise_lines(extracted.text)
    removed: tuple[str, ...] = ()
    furniture = default_furniture()
    if entry.format_name in furniture.formats:
        text, removed = strip_furniture(text, furniture)
    text = _tidy_blank_lines(text)
    if not text:
        what = "only page furniture" if removed else "only whitespace"
        raise LoadError(f"{path.name}: the file has no text ({what}); add its text or remove it from the folder.")

    return Document(
        doc_id=doc_id,
        path=path,
        title=_title(text, entry, extracted, path),
        text=text,
        source_hash=hashlib.sha256(data).hexdigest(),
        encoding=extracted.encoding,
        removed=removed,
    )


# "## 标题 ##" -> marks and text: greedy, up to the text's last character that is not a blank or "#" (a lazy
# `(.+?)` before `[ \t#]*` takes quadratic time on a heading line full of spaces).
_HEADING = re.compile(r"(#{1,6})[ \t]+(.*[^ \t#]|.)[ \t#]*")


def _title(text: str, entry: Reader, extracted: Extracted, path: Path) -> str:
    """The document's own title where its format marks one, else a short first line, else the file name.

    A marked title is a `#` heading up to the reader's `heading_levels` (md and html: the first `# `
    heading; docx: the first Heading/Title paragraph), else the title the reader found outside the text.
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if entry.heading_levels:
        for line in lines:
            match = _HEADING.fullmatch(line)
            if match and len(match.group(1)) <= entry.heading_levels:
                return match.group(2)
    if extracted.title:
        return extracted.title
    if lines and len(lines[0]) <= MAX_TITLE_CHARS:
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
