"""The .docx reader: paragraphs and tables in document order, Word headings as Markdown `#` lines.

Official documents are often Word files whose structure lives in paragraph styles (Heading N,
标题 N, Title); turning those into `#` lines lets the chunker and the title logic treat a .docx like
a .md file. Needs python-docx (the `formats` extra), imported only when a Word file is read.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from coopbot.ingest.loaders.registry import Extracted, LoadError, missing_package, reader

if TYPE_CHECKING:
    from docx.table import Table

_HEADING_STYLE = re.compile(r"(?:heading|标题)\s*([1-9])", re.IGNORECASE)
_TITLE_STYLE = re.compile(r"title|标题", re.IGNORECASE)
# A .docx is a zip: a small upload can unpack to gigabytes (a zip bomb). Real documents stay far below these.
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_MEMBERS = 5_000


@reader("docx", ".docx", heading_levels=6)
def read_docx(data: bytes, name: str) -> Extracted:
    """Paragraphs and tables in document order; Heading N paragraphs become `#`*N lines."""
    try:
        from docx import Document as open_docx
        from docx.table import Table
    except ImportError as exc:
        raise missing_package("python-docx", ".docx") from exc

    _check_unpacked_size(data, name)
    blocks: list[str] = []
    try:
        for block in open_docx(io.BytesIO(data)).iter_inner_content():
            if isinstance(block, Table):
                blocks.append("\n".join(_table_rows(block)))
            else:
                blocks.append(_paragraph(block.text, block.style.name if block.style else ""))
    except Exception as exc:  # python-docx/zipfile/lxml raise many types for damaged files
        raise _damaged(name, exc) from exc
    return Extracted("\n\n".join(block for block in blocks if block.strip()), "docx")


def _check_unpacked_size(data: bytes, name: str) -> None:
    """Refuse a zip bomb before parsing: count the members, and unpack each as a stream, stopping at the limit
    (the sizes in a zip's directory can lie)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _damaged(name, exc) from exc
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise LoadError(f"{name}: the Word file holds {len(members)} parts (at most {MAX_MEMBERS}); not read.")
    unpacked = 0
    for member in members:
        try:
            with archive.open(member) as part:
                while chunk := part.read(1 << 20):
                    unpacked += len(chunk)
                    if unpacked > MAX_UNPACKED_BYTES:
                        raise LoadError(
                            f"{name}: the Word file unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB "
                            "(a zip bomb, or a document full of embedded media); not read. Save it without the "
                            "media, or as PDF or text."
                        )
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
            raise _damaged(name, exc) from exc


def _damaged(name: str, exc: Exception) -> LoadError:
    return LoadError(
        f"{name}: cannot read this Word file, it looks damaged or is not a .docx "
        f"({type(exc).__name__}: {exc}); re-export the file as .docx from Word or LibreOffice."
    )


def _paragraph(text: str, style: str) -> str:
    text = text.strip()
    if not text:
        return ""
    heading = _HEADING_STYLE.fullmatch(style)
    if heading:
        return f"{'#' * min(int(heading.group(1)), 6)} {text}"
    if _TITLE_STYLE.fullmatch(style):
        return f"# {text}"
    return text


def _table_rows(table: Table) -> Iterator[str]:
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
