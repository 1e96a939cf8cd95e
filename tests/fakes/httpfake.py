"""A tiny real HTTP server on loopback that answers like an OpenAI-compatible endpoint, or fails on purpose.

Tests about fault handling (429, 5xx, silence, broken streams) need a real socket and real HTTP; the
model behind it does not matter, so the replies are canned.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does with the next requests."""

    status: int = 200
    pieces: list[str] = field(default_factory=lambda: ["你好", "。"])
    stream: bool = True  # SSE; False: one JSON body
    delay_s: float = 0.0  # silence before the reply
    piece_delay_s: float = 0.0  # silence between streamed pieces
    raw: bytes | None = None  # a broken body instead of the canned one
    requests: list[dict[str, object]] = field(default_factory=list)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up on purpose (a timeout test) is not an error worth printing."""


def free_port() -> int:
    """A loopback port nobody listens on (closed again at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fake_openai(behaviour: Behaviour) -> Iterator[str]:
    """Serve `behaviour` on a free loopback port; yields the base URL (ending in /v1)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            behaviour.requests.append(json.loads(self.rfile.read(length) or b"{}"))
            time.sleep(behaviour.delay_s)
            if behaviour.status != 200:
                body = json.dumps({"error": {"message": f"status {behaviour.status}"}}).encode()
                self.send_response(behaviour.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not behaviour.stream:
                message = {"choices": [{"message": {"role": "assistant", "content": "".join(behaviour.pieces)}}]}
                body = behaviour.raw or json.dumps(message, ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            if behaviour.raw is not None:
                self.wfile.write(behaviour.raw)
                return
            for piece in behaviour.pieces:
                event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
                self.wfile.flush()
                time.sleep(behaviour.piece_delay_s)
            self.wfile.write(b"data: [DONE]\n\n")

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
