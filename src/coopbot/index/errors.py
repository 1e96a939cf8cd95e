"""What can go wrong with the store, in words a user can act on: `StoreError` and `StoreUnavailable`.

`translate_errors` turns the Chroma client's own failures (a server that does not answer, a damaged SQLite
file, a panic in its native code) into `StoreUnavailable`, so the CLI prints one line and the server
answers 503, instead of a traceback. Imports only `config`; chromadb and httpx inside the functions.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Literal, ParamSpec, TypeVar

from coopbot.config import Settings


class StoreError(RuntimeError):
    """The index cannot be used as it is; the message says what to do."""


StoreProblem = Literal["unreachable", "damaged", "unreadable"]


class StoreUnavailable(StoreError):
    """The store cannot be reached or read: `what` is wrong, `hint` says what to do; the message is one line.

    `kind` is "unreachable" (a Chroma server that does not answer: retrying later may work), "damaged" (the
    database file is corrupt: it must be rebuilt) or "unreadable" (anything else the store failed with).
    """

    def __init__(self, what: str, hint: str, kind: StoreProblem = "unreadable") -> None:
        super().__init__(f"{what}. {hint}")
        self.what, self.hint, self.kind = what, hint, kind


_P = ParamSpec("_P")
_T = TypeVar("_T")
_DAMAGED = ("malformed", "not a database", "(code: 11)", "(code: 26)", "corrupt")  # SQLITE_CORRUPT, SQLITE_NOTADB


def store_problem(settings: Settings, exc: BaseException) -> StoreUnavailable | None:
    """What a failure inside the Chroma client means for a user, or None when it is not the store's doing."""
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    server = settings.index.chroma_mode == "server"
    address = f"{settings.index.chroma_host}:{settings.index.chroma_port}"
    if server and _unreachable(exc):
        return StoreUnavailable(
            f"cannot reach the Chroma server at {address} ({detail})",
            "Start it (`chroma run --path DIR --host HOST --port PORT`) or correct COOPBOT_CHROMA_HOST and "
            "COOPBOT_CHROMA_PORT; coopbot reconnects by itself as soon as it answers",
            "unreachable",
        )
    if not _store_failure(exc, server):
        return None
    if any(mark in detail.lower() for mark in _DAMAGED):
        if server:
            return StoreUnavailable(
                f"the Chroma server at {address} reports that its database is damaged ({detail})",
                "Stop it, move its --path folder away (keep it for inspection), start it again, then run "
                "`coopbot reindex --force` to rebuild the index from the documents",
                "damaged",
            )
        return StoreUnavailable(
            f"the index database {settings.chroma_path / 'chroma.sqlite3'} is damaged ({detail})",
            f"Move the folder {settings.chroma_path} away (keep it for inspection; stop `coopbot serve` first), then "
            f"run `coopbot ingest` (or `coopbot reindex --force`) to rebuild the index from the documents in "
            f"{settings.knowledge_dir}",
            "damaged",
        )
    if type(exc).__name__ == "NotFoundError":  # the collection went away under a running process
        return StoreUnavailable(
            f"the collection '{settings.index.collection}' is missing from the index ({detail})",
            "Another process deleted it, or the Chroma server lost its data: run `coopbot ingest` to rebuild it, "
            "then restart a running `coopbot serve`",
        )
    where = f"the Chroma server at {address}" if server else f"the index in {settings.chroma_path}"
    return StoreUnavailable(
        f"{where} cannot be read ({detail})",
        "Try again in a moment; if it persists, check the disk (space, permissions) and the Chroma log, or "
        "rebuild the index with `coopbot reindex --force`",
    )


def _unreachable(exc: BaseException) -> bool:
    """A connection that failed, broke or timed out (httpx's transport errors, or chromadb's own words)."""
    import httpx

    return isinstance(exc, (httpx.TransportError, ConnectionError)) or "could not connect" in str(exc).lower()


def _store_failure(exc: BaseException, server: bool) -> bool:
    """The store failed (not the caller): Chroma's internal errors, SQLite's, a panic in its native code, the disk."""
    import sqlite3

    from chromadb.errors import InternalError, NotFoundError

    if isinstance(exc, (InternalError, NotFoundError, sqlite3.DatabaseError)):
        return True
    if type(exc).__name__ == "PanicException":  # pyo3: a Rust panic surfaces as a BaseException
        return True
    return not server and isinstance(exc, OSError)


@contextlib.contextmanager
def translate_errors(settings: Settings) -> Iterator[None]:
    """Turn the store's own failures into `StoreUnavailable` (what is wrong, what to do); let the rest pass."""
    try:
        yield
    except StoreError:
        raise
    except BaseException as exc:
        problem = store_problem(settings, exc)
        if problem is None:
            raise
        raise problem from exc


def guarded(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """A `ChunkStore` method whose store failures become `StoreUnavailable`."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with translate_errors(args[0].settings):  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return call
