"""Read one source file into a cleaned `Document`; the reader is picked by the file's suffix.

Everything that can go wrong with a user's file becomes a `LoadError` whose message names the file,
says what is wrong and what to do, so ingestion can skip the file and report it.

`registry` maps each suffix to its reader; `load` is the path every file takes (read, clean, title);
`encoding` decodes text files and `furniture` strips scraped pages' furniture. One module per format
reads it: `text` (.txt, .md), `html`, `pdf`, `docx`, `csv`. Adding a format is a new reader module,
its name in the import below, and its test.
"""

# Importing a reader module registers its suffixes, in this order: the order users see them listed in.
from coopbot.ingest.loaders import text, html, pdf, docx, csv  # noqa: F401  # isort: skip
from coopbot.ingest.loaders.furniture import default_furniture, parse_furniture, strip_furniture
from coopbot.ingest.loaders.load import load_document
from coopbot.ingest.loaders.registry import LoadError, supported_suffixes

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadError",
    "default_furniture",
    "load_document",
    "parse_furniture",
    "strip_furniture",
]

SUPPORTED_SUFFIXES = supported_suffixes()
"""Every suffix coopbot reads: what ingestion, uploads, the web UI and the API accept."""
