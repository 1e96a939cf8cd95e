"""A damaged `chroma.sqlite3` (embedded mode): every command says which file and what to do, in one line,
and a running server answers 503 with "degraded" health instead of tracebacks and 500s.

The index is real (embedded Chroma, written by the real pipeline); the fake embedding model builds it, as
the model is not under test. The damage is real too: the middle of the SQLite file overwritten with garbage.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx
import pytest

from coopbot.config import Settings
from coopbot.index.chroma import StoreUnavailable
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.pipeline import ingest

from ..conftest import KNOWLEDGE, coopbot
from ..fakes.embedder import fake_embedder, fake_settings
from .serving import QUESTION, serve_in_thread, slow_service

SEED = "seed-cross-regional-innovation-cooperation.txt"


def damage(database: Path, *, under_a_reader: bool = False) -> None:
    """Overwrite the middle half of an SQLite file with garbage, page-aligned; the header page stays whole.

    A process that has the file open trusts its page cache until the header's change counter moves, so a
    small index can go on answering from memory; `under_a_reader` moves the counter, as a write would, so
    that a running server reads the damaged pages now rather than when its cache happens to evict them.
    """
    size = database.stat().st_size
    page = 4096
    start = max(page, (size // 4) // page * page)
    garbage = random.Random(14).randbytes(max(page, size // 2))
    with database.open("r+b") as out:
        out.seek(start)
        out.write(garbage[: size - start])
        if under_a_reader:
            out.seek(24)  # the file change counter (https://www.sqlite.org/fileformat.html)
            counter = int.from_bytes(out.read(4), "big")
            out.seek(24)
            out.write(((counter + 1) % 2**32).to_bytes(4, "big"))


@pytest.fixture
def damaged(tmp_path: Path) -> Settings:
    """Settings whose embedded index was built from the seed document, then damaged."""
    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / SEED).write_bytes((KNOWLEDGE / SEED).read_bytes())
    report = ingest(settings, embedder=fake_embedder(settings))
    assert report.chunks_added > 10
    damage(settings.chroma_path / "chroma.sqlite3")
    return settings


def _env(settings: Settings) -> dict[str, str]:
    return {
        "COOPBOT_DATA_DIR": str(settings.data_dir),
        "COOPBOT_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "COOPBOT_EMBEDDING_MODEL": settings.index.embedding_model,
    }


@pytest.mark.parametrize(
    "args",
    [("search", "跨区域创新合作面临哪些挑战？"), ("ingest",), ("reindex", "--force"), ("model", "info")],
    ids=["search", "ingest", "reindex", "model-info"],
)
def test_every_command_names_the_damaged_file_and_the_fix_in_one_line(damaged: Settings, args: tuple[str, ...]) -> None:
    result = coopbot(*args, env=_env(damaged))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    message = lines[0]
    assert message.startswith("error: ")
    assert str(damaged.chroma_path / "chroma.sqlite3") in message and "is damaged" in message
    assert f"Move the folder {damaged.chroma_path} away" in message and "`coopbot ingest`" in message


def test_the_documented_fix_works(damaged: Settings) -> None:
    """Move the folder away and ingest again: the index is rebuilt from the documents."""
    from chromadb.api.shared_system_client import SharedSystemClient

    damaged.chroma_path.rename(damaged.data_dir / "chroma.damaged")
    SharedSystemClient.clear_system_cache()  # what a new `coopbot ingest` process starts with
    report = ingest(damaged, embedder=fake_embedder(damaged))
    assert report.chunks_added == report.chunks_total > 10
    assert HybridIndex(damaged).count() == report.chunks_total


def test_a_server_whose_index_breaks_answers_503_and_degraded_health(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / SEED).write_bytes((KNOWLEDGE / SEED).read_bytes())
    service, _ = slow_service(settings)
    service.knowledge.update()
    with serve_in_thread(service) as url:
        assert httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=60).status_code == 200
        assert httpx.get(url + "/healthz", timeout=5).json()["status"] == "ok"

        damage(settings.chroma_path / "chroma.sqlite3", under_a_reader=True)
        for method, path, body in [
            ("POST", "/api/ask", {"question": QUESTION}),
            ("GET", "/api/documents", None),
        ]:
            response = httpx.request(method, url + path, json=body, timeout=60)
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "store_unavailable" and error["kind"] == "damaged", error
            assert "损坏" in error["message"]
            assert str(settings.chroma_path / "chroma.sqlite3") in error["cause"]
            assert "`coopbot ingest`" in error["hint"]
            assert int(response.headers["retry-after"]) >= 1

        began = time.monotonic()
        health = httpx.get(url + "/healthz", timeout=5)
        assert time.monotonic() - began < 1.0
        body = health.json()
        assert health.status_code == 200 and body["status"] == "degraded", body
        assert "is damaged" in body["cause"] and "coopbot ingest" in body["hint"]


def test_the_core_raises_store_unavailable_not_chromadbs_error(damaged: Settings) -> None:
    """What every face catches: one exception type, its message one line."""
    from coopbot.retrieval.retriever import Retriever

    with pytest.raises(StoreUnavailable) as raised:
        Retriever(damaged, embedder=fake_embedder(damaged)).search("跨区域创新合作", 3)
    assert raised.value.kind == "damaged" and "\n" not in str(raised.value)


def test_the_chat_says_so_in_chinese(tmp_path: Path) -> None:
    from coopbot.web.render import Session
    from coopbot.web.ui import chat_events

    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / SEED).write_bytes((KNOWLEDGE / SEED).read_bytes())
    service, _ = slow_service(settings)
    service.knowledge.update()
    damage(settings.chroma_path / "chroma.sqlite3", under_a_reader=True)

    async def chat() -> list[dict[str, object]]:
        shown: list[dict[str, object]] = []
        async for messages, *_ in chat_events(service, QUESTION, [], Session()):
            shown = messages
        return shown

    messages = asyncio.run(chat())
    assert messages[-1]["role"] == "assistant"
    assert "索引数据库已损坏" in str(messages[-1]["content"]), messages
    assert service.health(wait=5)["status"] == "degraded"
