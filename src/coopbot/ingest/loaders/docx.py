"""The .docx reader: paragraphs and tables in document order, Word headings as Markdown `#` lines.

Official documents are often Word files whose structure lives in paragraph styles (Heading N,
标题 N, Title); turning those into `#` lines lets the chunker and the title logic treat a .docx like
a .md file. Needs python-docx (the `formats` extra), imported only when a Word file is read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from coopbot.ingest.loaders.registry import Extracted, LoadError, missing_package, reader

if TYPE_CHECKING:
    from docx.table import Table

_HEADING_STYLE = re.compile(r"(?:heading|标题)\s*([1-9])", re.IGNORECASE)
_TITLE_STYLE = re.compile(r"title|标题", re.IGNORECASE)


@reader("docx", ".docx", heading_levels=6)
def read_docx(data: bytes, name: str) -> Extracted:
    """Paragraphs and tables in document order; Heading N paragraphs become `#`*N lines."""
    try:
        from docx import Document as open_docx
        from docx.table import Table
    except ImportError as exc:
        raise missing_package("python-docx", ".docx") from exc

    blocks: list[str] = []
    try:
        for block in open_docx(io.BytesIO(data)).iter_inner_content():
            if isinstance(block, Table):
                blocks.append("\n".join(_table_rows(block)))
            else:
                blocks.append(_paragraph(block.text, block.style.name if block.style else ""))
    except Exception as exc:  # python-docx/zipfile/lxml raise many types for damaged files
        raise LoadError(
            f"{name}: cannot read this Word file, it looks damaged or is not a .docx "
            f"({type(exc).__name__}: {exc}); re-export the file as .docx from Word or LibreOffice."
        ) from exc
    return Extracted("\n\n".join(block for block in blocks if block.strip()), "docx")


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
