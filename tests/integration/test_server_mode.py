"""Server mode for real: a `chroma run` process on loopback, reached through chromadb.HttpClient; killed under
a serving app and under an ingest, then started again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from coopbot.config import OFFLINE_ENV, Settings
from coopbot.index.chroma import StoreError, StoreUnavailable
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.pipeline import ingest
from coopbot.retrieval.retriever import Retriever

from ..conftest import KNOWLEDGE, ROOT, coopbot
from ..fakes.embedder import fake_embedder, fake_settings
from ..processes import stop, wait_ready
from .conftest import Chroma, free_port
from .serving import DOCUMENT, QUESTION, serve_in_thread, slow_service

SEED = "seed-cross-regional-innovation-cooperation.txt"


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
    server = settings.replace(chroma_mode="server", chroma_port=free_port())
    with pytest.raises(StoreError, match="chroma run"):
        HybridIndex(server)


def test_a_chroma_server_that_dies_gives_503_and_degraded_health_then_recovers(tmp_path: Path, chroma: Chroma) -> None:
    """Kill the real `chroma run` under a serving app: JSON 503s that say what to do, `/healthz` answering
    "degraded" at once; start it again on the same port and folder: answers and health come back by themselves."""
    settings = fake_settings(tmp_path, chroma_mode="server", chroma_port=chroma.port)
    (settings.knowledge_dir / "yrd.md").write_text(DOCUMENT, encoding="utf-8")
    service, _ = slow_service(settings)
    service.knowledge.update()
    address = f"127.0.0.1:{chroma.port}"
    with serve_in_thread(service) as url:
        assert httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=60).status_code == 200
        assert httpx.get(url + "/healthz", timeout=5).json()["status"] == "ok"

        chroma.kill()
        chat = {"model": "coopbot", "messages": [{"role": "user", "content": QUESTION}]}
        for method, path, body in [
            ("POST", "/api/ask", {"question": QUESTION}),
            ("POST", "/api/ask/stream", {"question": QUESTION}),
            ("GET", "/api/search?q=长三角", None),
            ("GET", "/api/documents", None),
            ("POST", "/v1/chat/completions", chat),
        ]:
            began = time.monotonic()
            response = httpx.request(method, url + path, json=body, timeout=30)
            assert time.monotonic() - began < 5, path
            assert response.status_code == 503, (path, response.text)
            assert response.headers["content-type"].startswith("application/json")
            error = response.json()["error"]
            assert error["code"] == "store_unavailable" and error["kind"] == "unreachable", error
            assert "连不上" in error["message"] and address in error["cause"] and "chroma run" in error["hint"]
            assert int(response.headers["retry-after"]) >= 1

        began = time.monotonic()
        health = httpx.get(url + "/healthz", timeout=5)
        assert time.monotonic() - began < 1.0
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "degraded" and address in body["cause"] and "chroma run" in body["hint"], body

        chroma.start()
        back = time.monotonic()
        while httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=60).status_code != 200:
            assert time.monotonic() - back < 20, "answers did not come back after the Chroma server did"
            time.sleep(0.2)
        answers_back = time.monotonic() - back
        while httpx.get(url + "/healthz", timeout=5).json()["status"] != "ok":
            assert time.monotonic() - back < 20, "health did not come back after the Chroma server did"
            time.sleep(0.2)
        assert answers_back < 5, answers_back


def test_a_hung_chroma_server_costs_each_request_its_deadline_not_its_worker_for_ever(
    tmp_path: Path, chroma: Chroma
) -> None:
    """chromadb's HTTP client has no deadline of its own: a frozen (SIGSTOP) `chroma run` still accepts
    connections and would hold every question for ever. With `index.chroma_timeout_s` each request ends
    in a 503 soon after it, health says why, and answers come back once the server wakes."""
    settings = fake_settings(tmp_path, chroma_mode="server", chroma_port=chroma.port, chroma_timeout_s=2)
    (settings.knowledge_dir / "yrd.md").write_text(DOCUMENT, encoding="utf-8")
    service, _ = slow_service(settings)
    service.knowledge.update()
    with serve_in_thread(service) as url:
        assert httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=60).status_code == 200
        chroma.freeze()
        try:
            for path in ["/api/ask", "/api/ask"]:  # the second finds the probe's verdict, not a fresh hang
                began = time.monotonic()
                response = httpx.post(url + path, json={"question": QUESTION}, timeout=60)
                assert time.monotonic() - began < 15, "a hung server held the request past its deadline"
                assert response.status_code == 503, response.text
                assert response.json()["error"]["kind"] == "unreachable", response.text
                assert "timed out" in response.json()["error"]["cause"].lower(), response.text
            began = time.monotonic()
            health = httpx.get(url + "/healthz", timeout=15)
            assert time.monotonic() - began < 5 and health.json()["status"] == "degraded", health.text
        finally:
            chroma.thaw()
        back = time.monotonic()
        while httpx.post(url + "/api/ask", json={"question": QUESTION}, timeout=60).status_code != 200:
            assert time.monotonic() - back < 20, "answers did not come back after the Chroma server woke"
            time.sleep(0.2)


def test_an_ingest_cut_off_by_a_dying_server_stops_with_store_unavailable(tmp_path: Path, chroma: Chroma) -> None:
    """The server dies while chunks are being written: the one exception every face knows, not httpx's."""
    settings = fake_settings(tmp_path, chroma_mode="server", chroma_port=chroma.port)
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "chunks" and chroma.process is not None:
            chroma.kill()

    with pytest.raises(StoreUnavailable) as raised:
        ingest(settings, embedder=fake_embedder(settings), progress=progress)
    assert raised.value.kind == "unreachable" and "\n" not in str(raised.value)
    assert f"127.0.0.1:{chroma.port}" in str(raised.value)


def test_the_cli_says_the_server_is_down_in_one_line(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    env = {
        "COOPBOT_DATA_DIR": str(settings.data_dir),
        "COOPBOT_KNOWLEDGE_DIR": str(settings.knowledge_dir),
        "COOPBOT_EMBEDDING_MODEL": settings.index.embedding_model,
        "COOPBOT_CHROMA_MODE": "server",
        "COOPBOT_CHROMA_PORT": str(free_port()),
    }
    for args in [("ingest",), ("search", "长三角"), ("model", "info")]:
        result = coopbot(*args, env=env)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Chroma server"), result.stderr


def test_a_chroma_server_that_hangs_never_holds_up_health(
    tmp_path: Path, chroma: Chroma, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP: connections open but nothing answers (Chroma's client waits forever). `/healthz` still answers
    at once and, once the check has hung past STALL_SECONDS, says the index does not answer."""
    from coopbot.web import health

    monkeypatch.setattr(health, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(health, "FRESH_SECONDS", 0.2)
    settings = fake_settings(tmp_path, chroma_mode="server", chroma_port=chroma.port)
    (settings.knowledge_dir / "yrd.md").write_text(DOCUMENT, encoding="utf-8")
    service, _ = slow_service(settings)
    service.knowledge.update()
    assert chroma.process is not None
    with serve_in_thread(service) as url, httpx.Client(timeout=10) as client:
        assert client.get(url + "/healthz").json()["status"] == "ok"
        time.sleep(0.3)  # the next health call starts a new check, which will hang
        chroma.process.send_signal(signal.SIGSTOP)
        try:
            slowest, body = 0.0, dict[str, Any]()
            give_up = time.monotonic() + 10
            while body.get("status") != "degraded":
                assert time.monotonic() < give_up, body
                began = time.monotonic()
                body = client.get(url + "/healthz").json()
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.2)
            assert slowest < 1.0, slowest
            assert "has not answered" in body["cause"] and body["documents"] == 1
        finally:
            chroma.process.send_signal(signal.SIGCONT)
        give_up = time.monotonic() + 10
        while client.get(url + "/healthz").json()["status"] != "ok":
            assert time.monotonic() < give_up, "health did not recover after SIGCONT"
            time.sleep(0.2)


NEW_DOCUMENT = (
    "# 青岚湾科创走廊\n\n青岚湾科创走廊由三座城市共建，重点发展海洋传感器与深海装备。"
    "走廊设立联合实验室十二家，共享大型科研仪器。"
)


def _app(data_dir: Path, knowledge: Path, model_dir: Path, chroma_port: int, log: Path) -> tuple[Any, str]:
    """`python app.py` on a free port over the shared Chroma server, with its own data dir (its BM25 file)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPBOT_")}
    env |= {
        "COOPBOT_CONFIG": str(data_dir.parent / "absent.toml"),
        "COOPBOT_DATA_DIR": str(data_dir),
        "COOPBOT_KNOWLEDGE_DIR": str(knowledge),
        "COOPBOT_EMBEDDING_MODEL": str(model_dir),
        "COOPBOT_CHROMA_MODE": "server",
        "COOPBOT_CHROMA_PORT": str(chroma_port),
        "COOPBOT_PORT": str(port),
        "COOPBOT_ADMIN_TOKEN": "admin-secret",
        "COOPBOT_LLM": "extractive",
        "COOPBOT_WARM_UP": "false",
        **OFFLINE_ENV,
    }
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", process, log, timeout=300, what="app.py")
    return process, url


def _found_in_both_halves(url: str, doc_id: str) -> bool:
    hits = httpx.get(url + "/api/search", params={"q": "青岚湾科创走廊的联合实验室有多少家", "k": 5}).json()["hits"]
    mine = [h for h in hits if h["doc_id"] == doc_id]
    return bool(mine) and mine[0]["lexical_rank"] is not None and mine[0]["dense_rank"] is not None


def _wait(condition: Callable[[], bool], timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:g} s")


def test_two_app_instances_on_one_chroma_server_see_each_others_changes(
    chroma: Chroma, tmp_path: Path, model_dir: Path
) -> None:
    """The documented scale-out: an upload through one instance is found through the other in the dense and
    the BM25 half within seconds, and so is a deletion."""
    knowledge = tmp_path / "shared-knowledge"
    knowledge.mkdir()
    shutil.copy(KNOWLEDGE / SEED, knowledge)
    first, url_a = _app(tmp_path / "a", knowledge, model_dir, chroma.port, tmp_path / "a.log")
    try:
        second, url_b = _app(tmp_path / "b", knowledge, model_dir, chroma.port, tmp_path / "b.log")
        try:
            admin = {"Authorization": "Bearer admin-secret"}
            files = {"file": ("qinglan.md", NEW_DOCUMENT.encode(), "text/markdown")}
            uploaded = httpx.post(url_a + "/api/documents", files=files, headers=admin, timeout=120)
            assert uploaded.status_code == 200, uploaded.text
            seen = _wait(lambda: _found_in_both_halves(url_b, "qinglan.md"), timeout=30)
            print(f"upload through A found through B after {seen:.1f} s")
            assert seen < 10, seen  # the other instance checks the collection's change token every 2 s

            deleted = httpx.delete(url_b + "/api/documents/qinglan.md", headers=admin, timeout=120)
            assert deleted.status_code == 200, deleted.text
            gone = _wait(
                lambda: (
                    not any(
                        h["doc_id"] == "qinglan.md"
                        for h in httpx.get(url_a + "/api/search", params={"q": "青岚湾科创走廊", "k": 5}).json()["hits"]
                    )
                ),
                timeout=30,
            )
            print(f"deletion through B gone from A after {gone:.1f} s")
            assert gone < 10, gone
        finally:
            stop(second)
    finally:
        stop(first)
