"""Admission control and the health probe, without a server: a bounded line, deadlines from arrival, no leaks."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from coopbot.index.chroma import StoreUnavailable
from coopbot.web import health
from coopbot.web.admission import Admission, Busy
from coopbot.web.health import StoreProbe


def test_beyond_the_slots_and_the_line_a_request_is_told_at_once() -> None:
    admission = Admission(workers=1, queue=1, wait_seconds=30)
    answering = admission.admit()
    answering.take()
    waiting = admission.admit()
    began = time.monotonic()
    with pytest.raises(Busy) as raised:
        admission.admit()
    assert time.monotonic() - began < 0.05
    assert 1 <= raised.value.retry_after <= 30 and "稍后再试" in str(raised.value)
    assert admission.snapshot() == {
        "active": 1,
        "waiting": 1,
        "workers": 1,
        "queue": 1,
        "rejected": 1,
        "timed_out": 0,
    }
    waiting.close()
    answering.close()
    assert admission.snapshot()["active"] == admission.snapshot()["waiting"] == 0


def test_the_deadline_counts_from_arrival() -> None:
    admission = Admission(workers=1, queue=2, wait_seconds=0.5)
    answering = admission.admit()
    answering.take()
    late = admission.admit(arrived=time.monotonic() - 0.4)  # it spent 0.4 s in some other line already
    began = time.monotonic()
    with pytest.raises(Busy):
        late.take()
    assert time.monotonic() - began < 0.3
    assert admission.snapshot()["timed_out"] == 1 and admission.snapshot()["waiting"] == 0
    answering.close()


def test_a_freed_slot_goes_to_a_waiting_request() -> None:
    admission = Admission(workers=1, queue=1, wait_seconds=5)
    answering = admission.admit()
    answering.take()
    waiting = admission.admit()
    got: list[float] = []

    def wait() -> None:
        waiting.take()
        got.append(time.monotonic())

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.1)
    assert not got
    freed = time.monotonic()
    answering.close()
    thread.join(2)
    assert got and got[0] - freed < 0.5
    assert admission.snapshot()["active"] == 1
    waiting.close()
    waiting.close()  # idempotent
    assert admission.snapshot()["active"] == 0


def test_a_ticket_closed_while_it_waits_gives_back_the_slot_it_then_gets() -> None:
    admission = Admission(workers=1, queue=1, wait_seconds=5)
    answering = admission.admit()
    answering.take()
    waiting = admission.admit()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            waiting.take()
        except Busy as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.1)
    waiting.close()  # the client went away
    answering.close()
    thread.join(2)
    assert errors and admission.snapshot()["active"] == admission.snapshot()["waiting"] == 0


def test_retry_after_grows_with_the_line() -> None:
    admission = Admission(workers=2, queue=10, wait_seconds=30)
    short = admission.retry_after()
    tickets = [admission.admit() for _ in range(10)]
    assert admission.retry_after() > short
    for ticket in tickets:
        ticket.close()


# -- the health probe -------------------------------------------------------------------------------


def test_the_probe_reports_a_broken_store_with_cause_and_hint() -> None:
    def check() -> tuple[int, int]:
        raise StoreUnavailable("cannot reach the Chroma server at 127.0.0.1:1 (refused)", "start it", "unreachable")

    state = StoreProbe(check).health(wait=5)
    assert state is not None and not state.ok
    assert state.cause and "127.0.0.1:1" in state.cause and state.hint == "start it" and state.kind == "unreachable"


def test_a_hanging_store_never_holds_up_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "STALL_SECONDS", 0.3)
    release = threading.Event()
    calls = []

    def check() -> tuple[int, int]:
        calls.append(1)
        if len(calls) > 1:
            release.wait(10)
        return 3, 30

    probe = StoreProbe(check)
    first = probe.health(wait=5)
    assert first is not None and first.ok and first.documents == 3
    monkeypatch.setattr(health, "FRESH_SECONDS", 0.0)  # every call is due for a check now

    async def ask() -> tuple[float, object]:
        began = time.monotonic()
        state = await probe.ahealth(0.1)
        return time.monotonic() - began, state

    seconds, state = asyncio.run(ask())
    assert seconds < 0.5 and state is first  # the check hangs: the last outcome, at once
    time.sleep(0.4)
    seconds, state = asyncio.run(ask())
    assert seconds < 0.5
    assert state is not None and not state.ok and "not answered" in str(state.cause)  # type: ignore[attr-defined]
    assert state.documents == 3  # type: ignore[attr-defined]
    release.set()
    assert len(calls) == 2, "one check at a time, however often health is asked"
