"""Untrusted files are read in a child process: a slow or crashing reader costs a `LoadError`, not the server.

The readers below are module-level functions so a spawned child can import them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from coopbot.ingest.loaders import pdf as pdf_loader
from coopbot.ingest.loaders.isolated import run_isolated
from coopbot.ingest.loaders.registry import LoadError


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def crash() -> str:
    os.kill(os.getpid(), signal.SIGSEGV)
    return "unreachable"


def refuse(message: str) -> str:
    raise LoadError(message)


def broken() -> str:
    raise ValueError("bad xref")


def test_a_reader_past_its_deadline_is_stopped() -> None:
    began = time.monotonic()
    with pytest.raises(LoadError, match=r"a\.pdf: reading it took longer than 1 s and was stopped; split it"):
        run_isolated(slow, 60.0, deadline_s=1.0, name="a.pdf", hint="split it")
    assert time.monotonic() - began < 10


def test_a_crash_in_the_reader_is_a_load_error_and_this_process_lives_on() -> None:
    with pytest.raises(LoadError, match=r"b\.pdf: the reader crashed on this file \(exit code -11\); re-export"):
        run_isolated(crash, deadline_s=30, name="b.pdf", hint="re-export")


def test_the_readers_own_words_and_failures_come_back() -> None:
    assert run_isolated(slow, 0.0, deadline_s=30, name="c.pdf", hint="-") == "done"
    with pytest.raises(LoadError, match=r"^c\.pdf: password-protected$"):
        run_isolated(refuse, "c.pdf: password-protected", deadline_s=30, name="c.pdf", hint="-")
    with pytest.raises(LoadError, match=r"c\.pdf: the reader failed on this file \(ValueError: bad xref\)"):
        run_isolated(broken, deadline_s=30, name="c.pdf", hint="-")


def test_a_pdf_is_read_under_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    path = tmp_path / "slow.pdf"
    with path.open("wb") as out:
        writer.write(out)
    monkeypatch.setattr(pdf_loader, "DEADLINE_S", 0.001)  # no child starts that fast: the deadline is what stops it
    with pytest.raises(LoadError, match=r"slow\.pdf: reading it took longer than 0\.001 s"):
        pdf_loader.read_pdf(path.read_bytes(), "slow.pdf")
