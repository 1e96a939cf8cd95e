"""A model server that coopbot starts, watches and restarts: llama.cpp never runs in the app's process.

A native library is untrusted: one bad instruction (an AMX kernel on a VM that denies AMX, a build
for another CPU) kills the process it runs in. So the local model runs in a child process
(`coopbot.llm.child`, llama-cpp-python's OpenAI-compatible server on a loopback port), and the app
talks to it over HTTP like any remote endpoint. A crash costs the answer in flight its model text
(it falls back to the extractive answer), never the app.

`ModelServer.start()` returns at once; a monitor thread spawns the child, waits for it to answer,
and restarts it with backoff when it dies. After `max_failed_starts` starts in a row that never got
ready it reports `failed` and tries again after `failed_retry_s`. `stop()` (also at exit) ends it;
the child ends itself if the app dies without stopping it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from coopbot.llm.base import GenerationError, GenerationTimeout, ModelState, ModelStatus

log = logging.getLogger("coopbot.llm")

_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_STABLE_S = 60.0  # a process that served this long before dying was healthy: its restart starts a new count
_PROBE_INTERVAL_S = 0.25
# A build with the fewest instruction sets (AVX2/FMA/F16C): for a CPU that advertises more than it lets a
# process use. A plain rebuild would produce the same library again (the wheel cache is keyed by the flags).
REBUILD_COMMAND = "COOPBOT_LLAMA_ISA=baseline scripts/build-llama.sh .venv/bin/python"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def describe_exit(code: int | None) -> str:
    """How the process ended, in words a user can act on (Chinese, for notices and `/healthz`)."""
    if code is None:
        return "进程没有在限定时间内就绪，已被结束"
    if code >= 0:
        return f"进程退出，退出码 {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"信号 {-code}"
    if name in ("SIGSEGV", "SIGILL", "SIGBUS", "SIGABRT", "SIGFPE"):
        return (
            f"进程崩溃（{name}）：llama.cpp 很可能是为另一种 CPU 编译的（例如含 AMX 或本机没有的 AVX-512 指令），"
            f"或模型文件与这个版本不兼容。请重建：{REBUILD_COMMAND}"
        )
    return f"进程被信号 {name} 结束"


def llama_server_args(model_path: Path, *, threads: int, ctx: int, verbose: bool) -> list[str]:
    """Arguments for `llama_cpp.server`: one model, every request in turn (none interrupts another)."""
    return [
        "--model", str(model_path),
        "--model_alias", model_path.stem,
        "--n_ctx", str(ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_batch", "512",
        "--seed", "0",
        "--interrupt_requests", "False",  # its default lets a new request cut off the answer in flight
        "--logits_all", "False",  # its default computes the vocabulary's logits for every prompt token: +15 % TTFT
        "--use_mlock", "False",  # as in-process: pinning 1.1 GB of RAM buys nothing on a machine that does not swap
        "--verbose", str(verbose),
    ]  # fmt: skip


class ModelServer:
    """One supervised child process serving an OpenAI-compatible API on 127.0.0.1."""

    def __init__(
        self,
        server_args: Sequence[str],
        *,
        start_timeout_s: float = 180.0,
        log_path: Path | None = None,
        preflight: Callable[[], None] | None = None,
        max_failed_starts: int = 3,
        failed_retry_s: float = 300.0,
        python: str = sys.executable,
    ) -> None:
        self.server_args = list(server_args)
        self.start_timeout_s = start_timeout_s
        self.log_path = log_path
        self.preflight = preflight
        self.max_failed_starts = max_failed_starts
        self.failed_retry_s = failed_retry_s
        self.python = python
        self.restarts = 0
        self.last_error = ""
        self._state: ModelState = "stopped"
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    # -- what callers use ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor (once); returns at once. The child loads in the background."""
        with self._changed:
            if self._monitor is not None and self._monitor.is_alive():
                return
            self._stopping.clear()
            self._set_state("starting")
            # PR_SET_PDEATHSIG follows the thread that forks: the monitor spawns every child and lives as long.
            self._monitor = threading.Thread(target=self._run, name="coopbot-model-server", daemon=True)
            self._monitor.start()
        atexit.register(self.stop)

    def wait_ready(self, timeout_s: float) -> str:
        """The server's base URL (…/v1) once it answers; GenerationError when it failed, GenerationTimeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if self._state == "ready" and self._url is not None:
                    return self._url
                if self._state == "failed":
                    raise GenerationError(f"本地模型进程无法启动：{self.last_error}")
                if self._state == "stopped":
                    raise GenerationError("本地模型进程已停止。", reason="本地模型进程已停止")
                left = deadline - time.monotonic()
                if left <= 0:
                    what = "重启" if self._state == "restarting" else "启动"
                    message = f"本地模型进程在 {timeout_s:g} 秒内没有{what}完成。"
                    raise GenerationTimeout(message, reason=message)
                self._changed.wait(left)

    @property
    def url(self) -> str | None:
        """The base URL while ready, else None."""
        with self._changed:
            return self._url if self._state == "ready" else None

    def status(self) -> ModelStatus:
        with self._changed:
            proc = self._proc
            pid = proc.pid if proc is not None and proc.poll() is None else None
            return ModelStatus(self._state, pid, self.restarts, self.last_error)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the child and the monitor; idempotent."""
        self._stopping.set()
        with self._changed:
            proc = self._proc
        if proc is not None:
            _terminate(proc)
        monitor = self._monitor
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout_s)
        with self._changed:
            self._set_state("stopped")

    # -- the monitor thread -------------------------------------------------------------------------

    def _set_state(self, state: ModelState, url: str | None = None) -> None:
        """Caller holds `_changed`."""
        self._state, self._url = state, url
        self._changed.notify_all()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            with self._changed:
                self._set_state("starting" if self.restarts == 0 and failures == 0 else "restarting")
            ready_at = self._serve_once()
            if self._stopping.is_set():
                break
            if ready_at is not None:  # it was serving, then died
                self.restarts += 1
                failures = 0 if time.monotonic() - ready_at > _STABLE_S else failures + 1
                log.warning("本地模型进程意外结束（%s），正在重启（第 %d 次）", self.last_error, self.restarts)
            else:
                failures += 1
                log.warning("本地模型进程启动失败（%s）", self.last_error)
            if failures >= self.max_failed_starts:
                with self._changed:
                    self._set_state("failed")
                log.error(
                    "本地模型进程连续 %d 次没有就绪，%g 秒后再试：%s", failures, self.failed_retry_s, self.last_error
                )
                if self._stopping.wait(self.failed_retry_s):
                    break
                failures = 0
                continue
            with self._changed:
                self._set_state("restarting")
            if self._stopping.wait(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]):
                break

    def _serve_once(self) -> float | None:
        """Spawn one child and wait until it dies; returns when it became ready (None: it never did)."""
        if self.preflight is not None:
            try:
                self.preflight()
            except Exception as exc:  # e.g. the model file is missing: say so, retry later like any failed start
                self.last_error = str(exc)
                return None
        port = free_port()
        proc = self._spawn(port)
        with self._changed:
            self._proc = proc
        try:
            if not self._await_ready(proc, port):
                code = proc.poll()  # None: it was still loading when time ran out (terminating it sets a code)
                _terminate(proc)
                self.last_error = self._explain(code)
                return None
            ready_at = time.monotonic()
            with self._changed:
                self._set_state("ready", f"http://127.0.0.1:{port}/v1")
            log.info("本地模型进程就绪：pid %d，端口 %d", proc.pid, port)
            proc.wait()
            with self._changed:
                self._set_state("restarting")
            self.last_error = self._explain(proc.returncode)
            return ready_at
        finally:
            _terminate(proc)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        command = [self.python, "-m", "coopbot.llm.child", str(os.getpid()), "--", *self.server_args]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("wb")
        try:
            # stdin stays open in this process: the child watches it and exits when it closes (the app died)
            return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT)
        finally:
            if not isinstance(output, int):
                output.close()

    def _await_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        import httpx

        deadline = time.monotonic() + self.start_timeout_s
        url = f"http://127.0.0.1:{port}/v1/models"
        while time.monotonic() < deadline and not self._stopping.is_set():
            if proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                    return True
            time.sleep(_PROBE_INTERVAL_S)
        return False

    def _explain(self, code: int | None) -> str:
        """The exit in words, with the last lines the child wrote (when it wrote to a log)."""
        text = describe_exit(code)
        tail = _tail(self.log_path) if self.log_path is not None else ""
        return f"{text}。最后的输出：{tail}" if tail else text


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(5)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_bytes()[-4000:].decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:500]
