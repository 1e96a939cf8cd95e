"""The plain-text readers: .txt and Markdown (.md, .markdown), decoded and otherwise kept as written.

The two differ only in titling (a Markdown `# ` heading is the title) and in cleaning (furniture.toml
strips page furniture from .txt, which is how scraped pages are often saved), so they share a reader.
"""

from __future__ import annotations

from coopbot.ingest.loaders.encoding import decode
from coopbot.ingest.loaders.registry import Extracted, reader


@reader("md", ".md", ".markdown", heading_levels=1)
@reader("txt", ".txt")
def read_text(data: bytes, name: str) -> Extracted:
    """The decoded text, as written."""
    text, codec = decode(data, name)
    return Extracted(text, codec)
