"""Server mode for real: a `chroma run` process on loopback, reached through chromadb.HttpClient."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index.chroma import StoreError
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.pipeline import ingest
from coopbot.retrieval.retriever import Retriever

from ..conftest import KNOWLEDGE
from ..processes import stop, wait_ready

SEED = "seed-cross-regional-innovation-cooperation.txt"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chroma_binary() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command (installed with chromadb) is missing: pip install chromadb")
    return found


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """Start `chroma run` on a free port, wait until it answers, stop it afterwards."""
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    process = subprocess.Popen(
        [
            _chroma_binary(),
            "run",
            "--path",
            str(tmp_path / "server-db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        heartbeat = f"http://127.0.0.1:{port}/api/v2/heartbeat"
        wait_ready(heartbeat, process, tmp_path / "chroma.log", timeout=60, what="chroma run")
        yield port
    finally:
        stop(process)
        log.close()


def test_ingest_and_search_through_a_chroma_server(settings: Settings, chroma_server: int) -> None:
    server = settings.replace(chroma_mode="server", chroma_port=chroma_server)
    shutil.copy(KNOWLEDGE / SEED, server.knowledge_dir)
    first = ingest(server)
    assert first.chunks_added == first.chunks_total > 10
    assert not (server.chroma_path).exists()  # nothing was stored locally

    again = ingest(server)
    assert again.chunks_added == 0 and again.files_unchanged == 1

    hits = Retriever(server).search("跨区域创新合作面临哪些挑战？", k=3)
    assert hits and hits[0].chunk.doc_id == SEED
    assert any("政策壁垒" in h.chunk.text or "挑战" in " ".join(h.chunk.heading_path) for h in hits)

    (server.knowledge_dir / SEED).unlink()
    (server.knowledge_dir / "other.md").write_text("# 其他\n\n建立联席会议制度。", encoding="utf-8")
    pruned = ingest(server)
    assert pruned.files_removed == 1
    docs = {s.chunk.doc_id for s in HybridIndex(server).chunks()}
    assert docs == {"other.md"}


def test_unreachable_server_gives_a_clear_error(settings: Settings) -> None:
    server = settings.replace(chroma_mode="server", chroma_port=_free_port())
    with pytest.raises(StoreError, match="chroma run"):
        HybridIndex(server)
