"""The .pdf reader: the text layer of every page.

A PDF without a text layer (a scan) or behind a password is refused with what to do about it,
rather than indexed as nothing. Needs pypdf (the `formats` extra), imported only when a PDF is read.
"""

from __future__ import annotations

import importlib.util
import io

from coopbot.ingest.loaders.isolated import run_isolated
from coopbot.ingest.loaders.registry import Extracted, LoadError, missing_package, reader

MAX_PAGES = 2_000  # beyond it a PDF is a book or an attack
DEADLINE_S = 300.0  # pypdf reads some 20-100 pages a second: MAX_PAGES fit, a pathological page does not


@reader("pdf", ".pdf")
def read_pdf(data: bytes, name: str) -> Extracted:
    """The text layer of every page, pages separated by a blank line; parsed in a child process that is
    stopped after DEADLINE_S (a crafted page can take minutes, or crash the parser)."""
    if importlib.util.find_spec("pypdf") is None:  # said at once, without starting a child or importing it here
        raise missing_package("pypdf", ".pdf")
    hint = "re-export it from its original application, or split it into smaller files"
    return run_isolated(_read_pdf, data, name, MAX_PAGES, deadline_s=DEADLINE_S, name=name, hint=hint)


def _read_pdf(data: bytes, name: str, max_pages: int) -> Extracted:
    try:
        from pypdf import PasswordType, PdfReader
    except ImportError as exc:
        raise missing_package("pypdf", ".pdf") from exc

    try:
        pdf = PdfReader(io.BytesIO(data))
        if pdf.is_encrypted and pdf.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise LoadError(f"{name}: the PDF is password-protected; save an unprotected copy and ingest that.")
        if len(pdf.pages) > max_pages:
            raise LoadError(
                f"{name}: the PDF has {len(pdf.pages)} pages (at most {max_pages}); split it into parts and "
                "ingest those."
            )
        pages = [(page.extract_text() or "").strip() for page in pdf.pages]
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
    return Extracted(text, "pdf")
