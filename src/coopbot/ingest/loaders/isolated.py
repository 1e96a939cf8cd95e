"""Run a reader on untrusted bytes in a child process with a deadline: the server survives whatever it does.

A crafted file can make a parser take minutes per page or crash inside native code; in the serving process
that would hold a request thread (and the GIL) or end the process. The child is spawned (not forked: the
server has threads), gets the bytes, and sends back the result or the reader's `LoadError`; a child past its
deadline is killed, one that dies is reported, each as a `LoadError` that says what to do.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from coopbot.ingest.loaders.registry import LoadError

_T = TypeVar("_T")


def _child(fn: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        result: tuple[str, Any] = ("ok", fn(*args))
    except LoadError as exc:
        result = ("refused", str(exc))
    except Exception as exc:  # the parent words it; the type and message say what broke
        result = ("failed", f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()


def run_isolated(fn: Callable[..., _T], *args: Any, deadline_s: float, name: str, hint: str) -> _T:
    """`fn(*args)` in a spawned child; a `LoadError` naming `name` if it refuses, fails, dies or runs past
    `deadline_s` seconds (`hint`: what the user can do about a file that is too slow or breaks the reader)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(fn, args, send), daemon=True, name=f"coopbot-read-{name}")
    child.start()
    send.close()
    try:
        if not receive.poll(deadline_s):
            raise LoadError(f"{name}: reading it took longer than {deadline_s:g} s and was stopped; {hint}")
        try:
            kind, value = receive.recv()
        except EOFError:  # the child died without a word: a crash in the reader
            child.join(5)
            raise LoadError(f"{name}: the reader crashed on this file (exit code {child.exitcode}); {hint}") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()
    if kind == "ok":
        return value  # type: ignore[no-any-return]
    if kind == "refused":
        raise LoadError(value)
    raise LoadError(f"{name}: the reader failed on this file ({value}); {hint}")
