"""Votes on answers: one per answer, and a file that rotates instead of growing without end."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from coopbot.schema import Answer
from coopbot.web.feedback import Feedback, FeedbackStore
from coopbot.web.render import Exchange, Session
from coopbot.web.ui import vote


def test_an_answer_takes_one_vote(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    service = SimpleNamespace(vote=lambda answer, v: store.record(Feedback.of(answer, v)))
    session = Session([Exchange("问题一", Answer("问题一", "回答一", [], False))])
    assert vote(service, session, 1, True) == "已记录反馈，谢谢！"  # type: ignore[arg-type]
    assert "已经记录过" in vote(service, session, 1, False)  # type: ignore[arg-type]
    assert [v["vote"] for v in store.read()] == ["up"]
    assert vote(service, session, 7, True) == ""  # type: ignore[arg-type]  # no such answer: nothing recorded


def test_the_feedback_file_rotates_past_its_size(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl", max_bytes=2_000)
    for n in range(30):
        store.record(Feedback.of(Answer(f"问题{n}", "回答" * 20, [], False), "down"))
    assert store.path.stat().st_size <= 2_000 and store.previous.stat().st_size <= 2_000
    kept = [v["question"] for v in store.read()]
    assert kept[-1] == "问题29" and kept == sorted(kept, key=lambda q: int(q[2:]))  # the newest, in order
    assert len(list(tmp_path.iterdir())) == 2  # the file and one previous: bounded
