"""The .csv reader: a table as one line per row of `header：value` pairs.

A table's facts are its rows, and a row's values mean little without their column names. Writing each
row as "城市：上海，常住人口（万人）：2487" keeps one row's facts together in one line, one sentence
to the chunker, so a retrieved passage carries both a row's key and its figures.
Decoded like any text file, so GBK and UTF-8-with-BOM exports from Excel work. The title is the file
name: a table's first line is its header, not a title.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from coopbot.ingest.loaders.encoding import decode
from coopbot.ingest.loaders.registry import Extracted, LoadError, reader


@reader("csv", ".csv")
def read_csv(data: bytes, name: str) -> Extracted:
    """The first non-empty row is the header; every later row becomes one line."""
    text, codec = decode(data, name)
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        cells = [[" ".join(cell.split()) for cell in row] for row in rows]
    except csv.Error as exc:
        raise LoadError(
            f"{name}: cannot parse this CSV ({exc}, line {rows.line_num}); check that its quotes are closed, "
            "or save it again from the spreadsheet as CSV and try again."
        ) from exc
    filled = [row for row in cells if any(row)]
    if len(filled) < 2:
        raise LoadError(
            f"{name}: the CSV has no data rows (at most a header row); add its rows or remove it from the folder."
        )
    header, *body = filled
    return Extracted("\n".join(_row_line(header, row) for row in body), codec, title=Path(name).stem)


def _row_line(header: list[str], row: list[str]) -> str:
    """`header：value` pairs joined by "，"; empty cells are left out, a cell without a header stands alone."""
    pairs = []
    for column, value in enumerate(row):
        label = header[column] if column < len(header) else ""
        if value:
            pairs.append(f"{label}：{value}" if label else value)
    return "，".join(pairs)
