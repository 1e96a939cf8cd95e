"""`coopbot doctor`: finds what fault tests broke, repairs what it can, and is quiet on a healthy index.

Real Chroma and the real pipeline; the fake embedder (vectors do not matter here).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index.bm25 import index_path
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest import pipeline
from coopbot.ingest.doctor import Finding, examine
from coopbot.ingest.documents import KnowledgeBase

from ..fakes.embedder import fake_embedder, fake_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = fake_settings(tmp_path)
    texts = {"a.md": "# 长三角\n\n长三角示范区建设科技创新共同体。", "b.md": "# 大湾区\n\n大湾区建设国际科技创新中心。"}
    for name, text in texts.items():
        (settings.knowledge_dir / name).write_text(text, encoding="utf-8")
    embedder = fake_embedder(settings)
    index = HybridIndex(settings)
    pipeline.ingest(settings, index=index, embedder=embedder)
    KnowledgeBase(settings, index=index, embedder=embedder).stamp()
    return settings


def _status(findings: list[Finding]) -> dict[str, str]:
    return {finding.check: finding.status for finding in findings}


def test_a_healthy_index_is_all_ok(settings: Settings) -> None:
    assert set(_status(examine(settings)).values()) == {"ok"}


def test_broken_bm25_ghosts_and_a_bad_documents_json_are_found_then_repaired(settings: Settings) -> None:
    path = index_path(settings)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["chunks"] = dict.fromkeys(data["chunks"], "")  # right ids, no words: passes every id check
    path.write_text(json.dumps(data), encoding="utf-8")
    (settings.knowledge_dir / "b.md").unlink()  # a ghost: its chunks stay until an ingest
    stamps = settings.data_dir / "documents.json"
    stamps.write_text(json.dumps({**json.loads(stamps.read_text()), "x.md": None}), encoding="utf-8")

    found = examine(settings)
    assert _status(found) == {
        "store": "ok",
        "model": "ok",
        "chunks": "ok",
        "bm25": "problem",
        "files": "problem",
        "documents.json": "problem",
    }
    assert all(f.fix for f in found if f.status == "problem")

    repaired = examine(settings, repair=True)
    assert {f.check for f in repaired if f.status == "repaired"} == {"bm25", "files", "documents.json"}
    assert set(_status(examine(settings)).values()) == {"ok"}
    assert HybridIndex(settings).lexical.search("科技创新共同体", 1)


def test_an_unreachable_store_is_one_finding_with_what_to_do(settings: Settings) -> None:
    found = examine(settings.replace(chroma_mode="server", chroma_port=9))
    assert [f.check for f in found] == ["store"] and found[0].status == "problem" and found[0].fix
