"""The model server's own process: it dies with coopbot, then runs llama-cpp-python's OpenAI server.

`python -m coopbot.llm.child PARENT_PID -- ARGS...` runs `llama_cpp.server ARGS...`. Two guards make
sure no model process outlives the app, however the app ends (even `kill -9`): on Linux the kernel
sends SIGKILL when the parent goes (PR_SET_PDEATHSIG), and everywhere the parent holds the write end
of this process's stdin, so end-of-file there means the parent is gone.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the guard was set
        os._exit(1)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(1024):
                pass
        os._exit(0)

    threading.Thread(target=watch_stdin, name="coopbot-parent-watch", daemon=True).start()


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] != "--" or not argv[0].isdigit():
        sys.exit("usage: python -m coopbot.llm.child PARENT_PID -- LLAMA_CPP_SERVER_ARGS...")
    _die_with_parent(int(argv[0]))
    sys.argv = ["llama_cpp.server", *argv[2:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
