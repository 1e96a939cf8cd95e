"""The real API app served for fault and load tests: uvicorn in a thread, or in a process of its own.

The embedding model is the fake one, made slow on demand (`SlowModel.delay`): these tests are about how the
server behaves when answers are slow or the index breaks, not about the model. `python -m
tests.integration.serving DIR PORT DELAY WORKERS QUEUE WAIT` serves a one-document knowledge base in its own
process (its own interpreter lock, so a load test measures the server and not the client sharing it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings, offline
from coopbot.index.embedder import Embedder
from coopbot.web.admission import Admission
from coopbot.web.service import Service

from ..fakes.embedder import FakeSentenceModel, fake_settings

DOCUMENT = (
    "# 长三角\n\n## 范围\n\n长三角一体化发展规划纲要覆盖的区域总面积是35.8万平方公里。"
    "规划范围包括上海市、江苏省、浙江省、安徽省全域。\n"
)
QUESTION = "长三角规划覆盖的区域总面积有多大？"


class SlowModel(FakeSentenceModel):
    """The fake model, sleeping `delay` seconds per call (the GIL is free meanwhile, as in torch)."""

    delay = 0.0

    def encode(self, texts: list[str], **kwargs: Any) -> npt.NDArray[np.float32]:
        time.sleep(self.delay)
        return super().encode(texts, **kwargs)


def slow_service(settings: Settings) -> tuple[Service, SlowModel]:
    """A Service over `settings` with the slow fake model and no answer model (extractive answers)."""
    from coopbot.assistant import build_assistant

    model = SlowModel()
    embedder = Embedder(model, settings)  # type: ignore[arg-type]
    return Service(settings, assistant=build_assistant(settings, embedder=embedder, generator=None)), model


@contextlib.contextmanager
def serve_in_thread(service: Service, *, whole: bool = False) -> Iterator[str]:
    """`create_app(service)` (with `whole`, `create_server(service)`: the Gradio pages too) on a free loopback
    port, served by uvicorn in a thread; yields the base URL."""
    import socket

    import uvicorn

    from coopbot.web.api import create_app
    from coopbot.web.server import create_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_server(service) if whole else create_app(service)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def request(
    port: int, method: str, path: str, body: Any = None, timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a connection of its own: (status, headers, body).

    A few lines of asyncio instead of httpx: with hundreds of requests at once, httpx's connection pool costs
    the client seconds of its own, which a load test would wrongly charge to the server.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    try:
        writer.write(head.encode() + data)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    header, _, payload = response.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":  # what middleware-wrapped responses use
        payload = _unchunk(payload)
    return int(lines[0].split()[1]), headers, payload


def _unchunk(payload: bytes) -> bytes:
    body = b""
    while payload:
        size, _, rest = payload.partition(b"\r\n")
        length = int(size.split(b";")[0], 16)
        if length == 0:
            break
        body, payload = body + rest[:length], rest[length + 2 :]
    return body


def main(argv: list[str]) -> None:
    """Serve a one-document knowledge base: DIR PORT DELAY WORKERS QUEUE WAIT."""
    import uvicorn

    from coopbot.web.server import create_server

    offline()
    folder, port, delay = Path(argv[0]), int(argv[1]), float(argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    workers, queue, wait = int(argv[3]), int(argv[4]), float(argv[5])
    # One client sends the whole crowd here: the per-client throttle (tested on its own) must not be what answers.
    settings = fake_settings(folder, answer_workers=workers, answer_wait_seconds=wait, asks_per_minute=100_000)
    (settings.knowledge_dir / "yrd.md").write_text(DOCUMENT, encoding="utf-8")
    service, model = slow_service(settings)
    service.knowledge.update()
    service.ask(QUESTION)  # first-question costs (word lists, BM25 matrices) are paid before anyone measures
    service.admission = Admission(workers, queue, wait)
    model.delay = delay
    # The whole server (API, Gradio pages, access policy and its middleware), as `python app.py` serves it.
    uvicorn.run(create_server(service), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
