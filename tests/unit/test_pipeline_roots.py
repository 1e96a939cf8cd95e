"""Pruning by the knowledge folder's identity: moving or renaming it leaves no ghosts, and a file is one
document whichever way it was given.

Real Chroma and the real pipeline; the fake embedder (which vectors do not matter here).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index.embedder import Embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest import pipeline

from ..fakes.embedder import fake_embedder, fake_settings

TEXTS = {
    "a.md": "# 长三角\n\n长三角示范区建设科技创新共同体，推动要素自由流动。",
    "b.md": "# 大湾区\n\n粤港澳大湾区建设国际科技创新中心，推动规则衔接。",
    "sub/c.md": "# 京津冀\n\n京津冀协同发展的核心是有序疏解北京非首都功能。",
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = fake_settings(tmp_path)
    for name, text in TEXTS.items():
        (settings.knowledge_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (settings.knowledge_dir / name).write_text(text, encoding="utf-8")
    return settings


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return fake_embedder(settings)


def _docs(settings: Settings) -> set[str]:
    return {record.doc_id for record in HybridIndex(settings).records().values()}


def test_a_moved_knowledge_folder_leaves_no_ghosts(settings: Settings, embedder: Embedder) -> None:
    pipeline.ingest(settings, embedder=embedder)
    moved = settings.knowledge_dir.rename(settings.knowledge_dir.parent / "renamed-knowledge")
    (moved / "b.md").unlink()
    report = pipeline.ingest(settings.replace(knowledge_dir=moved), embedder=embedder)
    assert _docs(settings) == {"a.md", "sub/c.md"}
    assert report.files_removed == 1 and report.chunks_added == 0  # kept files are not embedded again


def test_an_index_from_before_the_identity_is_pruned_and_relabelled(settings: Settings, embedder: Embedder) -> None:
    pipeline.ingest(settings, embedder=embedder)
    index = HybridIndex(settings)
    legacy = [replace(stored, root=str(settings.knowledge_dir.resolve())) for stored in index.chunks()]
    with index.writing() as writes:  # as the previous version stored them: the folder's absolute path
        writes.update_metadata(legacy)
    (settings.knowledge_dir / "b.md").unlink()
    report = pipeline.ingest(settings, embedder=embedder)
    assert _docs(settings) == {"a.md", "sub/c.md"} and report.chunks_added == 0
    assert {record.root for record in HybridIndex(settings).records().values()} == {pipeline.KNOWLEDGE_ROOT}


def test_a_file_is_one_document_however_it_is_given(settings: Settings, embedder: Embedder) -> None:
    pipeline.ingest(settings, embedder=embedder)
    again = pipeline.ingest(settings, [settings.knowledge_dir / "sub" / "c.md"], embedder=embedder)
    assert again.files_unchanged == 1 and _docs(settings) == {"a.md", "b.md", "sub/c.md"}


def test_pruning_a_subfolder_touches_only_that_subfolder(settings: Settings, embedder: Embedder) -> None:
    pipeline.ingest(settings, embedder=embedder)
    (settings.knowledge_dir / "sub" / "c.md").unlink()
    (settings.knowledge_dir / "b.md").unlink()
    report = pipeline.ingest(settings, [settings.knowledge_dir / "sub"], prune=True, embedder=embedder)
    assert report.files_removed == 1 and _docs(settings) == {"a.md", "b.md"}  # b.md waits for a full ingest


def test_another_folder_keeps_its_path_as_identity(settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "d.md").write_text("# 成渝\n\n成渝地区双城经济圈建设西部科学城。", encoding="utf-8")
    pipeline.ingest(settings, embedder=embedder)
    pipeline.ingest(settings, [extra], embedder=embedder)
    roots = {record.doc_id: record.root for record in HybridIndex(settings).records().values()}
    assert roots["d.md"] == str(extra.resolve()) and roots["a.md"] == pipeline.KNOWLEDGE_ROOT
    pipeline.ingest(settings, embedder=embedder)  # a full ingest of the knowledge dir keeps the other folder's files
    assert "d.md" in _docs(settings)
