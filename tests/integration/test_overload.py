"""Overload has a shape: the whole server (API, Gradio pages, access policy) in a uvicorn process of its own,
hundreds of questions at once.

Answers are made slow with the fake model's delay (0.4 s each). What must hold: a bounded line (slots +
`queue` waiting), everyone beyond it told 503 with Retry-After at once, a waiting request gives up at its
deadline counted from its arrival, and `/healthz` (and the other routes) stay fast meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..processes import stop, wait_ready
from ..web_fixtures import free_port
from .serving import QUESTION, request

ROOT = Path(__file__).resolve().parents[2]
DELAY = 0.4
pytestmark = pytest.mark.slow  # two servers, about 25 s


@dataclass
class SlowServer:
    port: int
    workers: int
    queue: int
    wait: float


def _serve(tmp_path: Path, workers: int, queue: int, wait: float) -> Iterator[SlowServer]:
    port = free_port()
    log = tmp_path / "server.log"
    argv = [str(tmp_path / "app"), str(port), str(DELAY), str(workers), str(queue), str(wait)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.serving", *argv], cwd=ROOT, stdout=out, stderr=out
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", process, log, timeout=120, what="the slow test server")
        yield SlowServer(port, workers, queue, wait)
    finally:
        stop(process)


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[SlowServer]:
    """Two answer slots, a line of 8, 30 s of patience: the defaults' shape, small enough to fill."""
    yield from _serve(tmp_path, workers=2, queue=8, wait=30)


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[SlowServer]:
    """One slot, a line of 6, but only 1 s to wait: most of the line must give up at its deadline."""
    yield from _serve(tmp_path, workers=1, queue=6, wait=1.0)


async def _ask(port: int, i: int) -> tuple[int, float, str | None, dict[str, object]]:
    began = time.monotonic()
    status, headers, body = await request(port, "POST", "/api/ask", {"question": f"{QUESTION}（{i}）"})
    return status, time.monotonic() - began, headers.get("retry-after"), json.loads(body or b"{}")


async def _timed(port: int, path: str) -> tuple[float, int, dict[str, object]]:
    began = time.monotonic()
    status, _, body = await request(port, "GET", path, timeout=30)
    return time.monotonic() - began, status, json.loads(body)


def test_a_crowd_beyond_the_line_is_told_at_once_and_health_stays_fast(crowded: SlowServer) -> None:
    async def run() -> tuple[list[tuple[int, float, str | None, dict[str, object]]], list[float], list[float]]:
        asks = [asyncio.create_task(_ask(crowded.port, i)) for i in range(300)]
        await asyncio.sleep(0.5)  # the line is full now: 2 answering, 8 waiting, 290 told to come back
        health, documents = [], []
        for _ in range(8):
            seconds, status, body = await _timed(crowded.port, "/healthz")
            assert status == 200 and body["status"] == "ok", body
            health.append(seconds)
            seconds, status, _ = await _timed(crowded.port, "/api/documents")
            assert status == 200
            documents.append(seconds)
            await asyncio.sleep(0.2)
        return await asyncio.gather(*asks), health, documents

    results, health, documents = asyncio.run(run())
    answered = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(answered) + len(refused) == 300, {r[0] for r in results}
    # Everyone who got in was answered (2 slots x 30 s is ample for 10 answers of 0.4 s) ...
    assert len(answered) >= crowded.workers + crowded.queue
    # ... and the rest were told at once, with when to come back, not after waiting their turn.
    assert len(refused) >= 300 - 2 * (crowded.workers + crowded.queue)
    assert max(r[1] for r in refused) < 3.0, sorted(r[1] for r in refused)[-5:]
    assert statistics.median(r[1] for r in refused) < 1.0
    assert all(r[2] is not None and int(r[2]) >= 1 for r in refused)
    assert all(r[3]["error"]["code"] == "busy" for r in refused)  # type: ignore[index]
    # The health route and an ordinary route never waited behind the answers.
    assert max(health) < 1.0, health
    assert max(documents) < 1.0, documents


def test_a_waiting_request_gives_up_at_its_deadline_counted_from_arrival(impatient: SlowServer) -> None:
    async def run() -> list[tuple[int, float, str | None, dict[str, object]]]:
        return await asyncio.gather(*(_ask(impatient.port, i) for i in range(7)))

    results = asyncio.run(run())
    answered = [r for r in results if r[0] == 200]
    timed_out = [r for r in results if r[0] == 503]
    # One slot and 0.4 s per answer: within the 1 s deadline two or three are answered; the rest give up.
    assert 2 <= len(answered) <= 4, [(r[0], round(r[1], 2)) for r in results]
    assert len(timed_out) == 7 - len(answered)
    for _, seconds, retry_after, body in timed_out:
        assert 0.9 <= seconds < 2.0, seconds  # at the deadline: their wait counted from their arrival
        assert retry_after is not None and body["error"]["code"] == "busy"  # type: ignore[index]

    health = asyncio.run(_timed(impatient.port, "/healthz"))[2]
    assert health["answers"] == {  # the line is empty again: nobody's place leaked
        "active": 0,
        "waiting": 0,
        "workers": 1,
        "queue": 6,
        "rejected": 0,
        "timed_out": len(timed_out),
    }
