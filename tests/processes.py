"""Servers the tests start as real processes (Chroma, llama.cpp's OpenAI server, the web app): wait, stop."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float, what: str) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not answer within {timeout:g} s:\n{log.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate a process the test started; kill it if it does not stop in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
