"""Sentence spans: where a sentence of Chinese text ends, for chunking and for answering alike.

The chunker packs these sentences into passages and the answer composer and the citation checker
quote them, so a passage never cuts a sentence that an answer then cites.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# The end of a sentence: terminators (or an ellipsis), then any closing quotes or brackets.
SENTENCE_END = re.compile(r"(?:[。！？；!?]+|…+)[”’」』）)】》〕]*")


def line_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line in text[start:end], without its newline."""
    pos = start
    while pos < end:
        newline = text.find("\n", pos, end)
        stop = end if newline < 0 else newline
        yield pos, stop
        pos = stop + 1


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span past surrounding whitespace (full-width spaces included) without copying text."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `text`: ends at 。！？；!? or …, or at a line break; trimmed, non-empty.

    The answer composer quotes and cites these spans, so they use the same sentence ends as chunking.
    """
    spans: list[tuple[int, int]] = []
    for line_start, line_end in line_spans(text, 0, len(text)):
        start = line_start
        for match in SENTENCE_END.finditer(text, line_start, line_end):
            span = trim_span(text, start, match.end())
            if span[1] > span[0]:
                spans.append(span)
            start = match.end()
        span = trim_span(text, start, line_end)
        if span[1] > span[0]:
            spans.append(span)
    return spans
