"""Integration fixtures: a real `chroma run` process on loopback, for any module that needs a Chroma server."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..processes import stop, wait_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chroma_binary() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    found = str(beside_python) if beside_python.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command (installed with chromadb) is missing: pip install chromadb")
    return found


class Chroma:
    """A `chroma run` process on loopback that a test can kill and start again (same port, same folder)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.log = folder / "chroma.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start it and wait until it answers; returns the seconds that took."""
        began = time.monotonic()
        command = [_chroma_binary(), "run", "--path", str(self.folder / "server-db"), "--host", "127.0.0.1"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*command, "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT)
        heartbeat = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
        wait_ready(heartbeat, self.process, self.log, timeout=60, what="chroma run")
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-whatever, as in a crash."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the server still accepts connections (the kernel does) but never answers, as when it hangs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process would never see the SIGTERM
            stop(self.process)
            self.process = None


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[Chroma]:
    """`chroma run` on a free port, stopped afterwards."""
    server = Chroma(tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chroma_server(chroma: Chroma) -> int:
    """The port of a running `chroma run`."""
    return chroma.port
