"""One writer per embedded index: a lock file in the data dir, held by the process that writes.

Embedded Chroma keeps an in-memory vector index per process: a second process writing the same folder
leaves the first one serving chunks that no longer exist (a live server answered half its requests
with errors until restarted). So a writer takes an exclusive `flock` on `data_dir/index.lock`; another
process that wants to write is refused with a message naming the holder. The kernel drops the lock
when the holder exits, even by kill -9, so a stale lock cannot block anyone. A Chroma server is made
for several processes and needs no lock.

Within a process the lock is shared (counted), so several components of one server may write in turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coopbot.config import Settings
from coopbot.index.chroma import StoreError

_GUARD = threading.Lock()


class IndexBusy(StoreError):
    """Another process is writing this index; the message names it and says what to do."""


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}


def lock_path(settings: Settings) -> Path | None:
    """The lock file of an embedded index; None for a Chroma server (several writers are its job)."""
    if settings.index.chroma_mode == "server":
        return None
    return settings.data_dir / "index.lock"


def holder(path: Path) -> str:
    """Who holds the lock, as written by the holder (best effort: the file may be mid-write)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("since", 0))))
    who = info.get("purpose", "a coopbot process")
    return f"{who} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since})"


def acquire(settings: Settings, purpose: str | None = None) -> bool:
    """Take (or share, within this process) the writer lock; False for a Chroma server (no lock).

    Raises IndexBusy when another process holds it.
    """
    path = lock_path(settings)
    if path is None:
        return False
    key = path.resolve()
    with _GUARD:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexBusy(
                f"the index in {settings.data_dir} is being written by {holder(path)}. Only one process may write an "
                "embedded index: wait for it to finish, or stop it. While `coopbot serve` runs, add or delete "
                "documents through its knowledge tab or admin API (`POST /api/documents`). Several writers need a "
                "Chroma server (COOPBOT_CHROMA_MODE=server)."
            ) from None
        stamp = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose or _command()}
        stamp["since"] = time.time()
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(stamp).encode())
        _held[key] = _Held(fd, 1)
        return True


def _command() -> str:
    """What this process is, for the message another writer gets: e.g. `coopbot ingest`."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([program, *sys.argv[1:2]])


def release(settings: Settings) -> None:
    """Give back one share of the lock; the last share unlocks the file."""
    path = lock_path(settings)
    if path is None:
        return
    key = path.resolve()
    with _GUARD:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count == 0:
            del _held[key]
            os.ftruncate(held.fd, 0)
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)


@contextlib.contextmanager
def writer(settings: Settings, purpose: str | None = None) -> Iterator[None]:
    """Hold the writer lock for a block (no-op for a Chroma server)."""
    taken = acquire(settings, purpose)
    try:
        yield
    finally:
        if taken:
            release(settings)


@contextlib.contextmanager
def if_free(settings: Settings) -> Iterator[bool]:
    """Hold the writer lock for a block if no other process has it: yields whether this process may write."""
    try:
        taken = acquire(settings)
    except IndexBusy:
        yield False
        return
    try:
        yield True
    finally:
        if taken:
            release(settings)


def holds(settings: Settings) -> bool:
    """This process holds the writer lock (always True for a Chroma server: nothing to hold)."""
    path = lock_path(settings)
    if path is None:
        return True
    key = path.resolve()
    with _GUARD:
        return key in _held
