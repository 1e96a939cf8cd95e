"""Chroma's HTTP client with a deadline: chromadb's own waits for ever (`httpx.Client(timeout=None)`).

A Chroma server that accepts connections but never answers (stopped, swapping, a dead proxy in between)
would otherwise hold every question's worker thread without end, and a client being built would hang in
its first request. chromadb has no setting for it and refuses other client classes, so while `connect`
builds a client, the `httpx` its HTTP module sees makes sessions with the deadline. Only sessions
created inside `connect` get it; chromadb's other uses of httpx are untouched.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

CONNECT_S = 5.0  # a server that is up accepts at once; a missing one should fail fast
_T = TypeVar("_T")
_building = threading.local()


def _client(*args: Any, **kwargs: Any) -> httpx.Client:
    seconds = getattr(_building, "seconds", None)
    if seconds is not None and kwargs.get("timeout") is None:
        kwargs["timeout"] = httpx.Timeout(seconds, connect=min(CONNECT_S, seconds))
    return httpx.Client(*args, **kwargs)


def _install() -> None:
    from chromadb.api import fastapi

    if getattr(fastapi.httpx, "__coopbot__", False):  # type: ignore[attr-defined]
        return
    shim = types.ModuleType("httpx")
    shim.__dict__.update(httpx.__dict__)
    shim.Client = _client  # type: ignore[attr-defined]
    shim.__coopbot__ = True  # type: ignore[attr-defined]
    fastapi.httpx = shim  # type: ignore[attr-defined]


def connect(build: Callable[[], _T], seconds: float) -> _T:
    """`build()` (which makes a chromadb HTTP client) with every request of that client ending after `seconds`."""
    _install()
    _building.seconds = seconds
    try:
        return build()
    finally:
        _building.seconds = None
