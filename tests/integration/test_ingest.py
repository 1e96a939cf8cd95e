"""Incremental indexing against the real Chroma (embedded in tmp_path) and the real model."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index.chroma import ChunkStore, ModelMismatchError, StoredChunk
from coopbot.index.embedder import Embedder, load_embedder
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest import chunking, loaders
from coopbot.ingest.pipeline import NothingIndexedError, ingest, pipeline_fingerprint, reindex
from coopbot.retrieval.retriever import Retriever
from coopbot.schema import Chunk

from ..conftest import KNOWLEDGE

SEED = "seed-cross-regional-innovation-cooperation.txt"
LAW = "law-promoting-transformation-of-sci-tech-achievements-2015.md"
CSV_DATA = Path(__file__).parents[1] / "data" / "regional-cooperation-projects.csv"

SMALL_DOC = """# 区域合作示例

## 第一章 总则

第一条 为了促进区域协同创新，制定本示例。第二条 各地区应当共享科研设施。

## 第二章 合作机制

第三条 建立跨区域联席会议制度，定期会商合作事项。第四条 设立协同创新基金，支持联合攻关。
"""


def _stored(settings: Settings) -> dict[str, StoredChunk]:
    return {s.chunk.chunk_id: s for s in HybridIndex(settings).chunks()}


def _chunks(settings: Settings, path: Path) -> list[Chunk]:
    document = loaders.load_document(path, path.name)
    return chunking.chunk_document(
        document,
        size=settings.index.chunk_size,
        min_size=settings.index.chunk_min_size,
        overlap=settings.index.chunk_overlap,
    )


def _expected_ids(settings: Settings) -> set[str]:
    """The ids a clean, complete index of the knowledge dir must hold: computed without the index."""
    return {c.chunk_id for path in settings.knowledge_dir.iterdir() for c in _chunks(settings, path)}


def _assert_consistent(settings: Settings) -> None:
    """Exactly the chunks of the files on disk: nothing missing, nothing stale, nothing twice."""
    stored = _stored(settings)
    assert set(stored) == _expected_ids(settings)
    per_doc = Counter(s.chunk.doc_id for s in stored.values())
    for s in stored.values():
        assert s.doc_chunks == per_doc[s.chunk.doc_id]


@pytest.fixture
def embedder(settings: Settings) -> Embedder:
    return load_embedder(settings)


def test_ingest_then_rerun_embeds_nothing(settings: Settings, embedder: Embedder) -> None:
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    (settings.knowledge_dir / "small.md").write_text(SMALL_DOC, encoding="utf-8")
    first = ingest(settings, embedder=embedder)
    assert first.files_indexed == 2 and first.chunks_added == first.chunks_total > 10
    assert not first.skipped
    _assert_consistent(settings)

    second = ingest(settings, embedder=embedder)
    assert second.chunks_added == second.chunks_updated == second.chunks_removed == 0
    assert second.files_unchanged == 2 and second.chunks_unchanged == first.chunks_total
    assert second.embed_seconds == 0


def test_edit_replaces_only_changed_chunks(settings: Settings, embedder: Embedder) -> None:
    shutil.copy(KNOWLEDGE / LAW, settings.knowledge_dir)
    ingest(settings, embedder=embedder)
    before = _stored(settings)

    path = settings.knowledge_dir / LAW
    text = path.read_text(encoding="utf-8")
    old = "第一条 为了促进科技成果转化为现实生产力"
    assert old in text
    path.write_text(text.replace(old, "第一条 为了加快推动科技成果转化为现实生产力"), encoding="utf-8")
    report = ingest(settings, embedder=embedder)
    after = _stored(settings)

    assert 1 <= report.chunks_added <= 2 and report.chunks_removed == report.chunks_added
    assert len(set(after) - set(before)) == report.chunks_added
    assert any("加快推动科技成果转化" in s.chunk.text for s in after.values())
    assert not any("为了促进科技成果转化为现实生产力" in s.chunk.text for s in after.values())
    _assert_consistent(settings)


def test_moved_text_updates_offsets_without_reembedding(settings: Settings, embedder: Embedder) -> None:
    path = settings.knowledge_dir / "small.md"
    path.write_text(SMALL_DOC, encoding="utf-8")
    ingest(settings, embedder=embedder)
    path.write_text(SMALL_DOC.replace("# 区域合作示例\n", "# 区域合作示例\n\n（发布稿）\n"), encoding="utf-8")
    report = ingest(settings, embedder=embedder)
    assert report.chunks_added <= 1  # at most the new preamble
    assert report.chunks_updated >= 2  # the articles moved: offsets rewritten, vectors kept
    document = loaders.load_document(path, "small.md")
    for stored in _stored(settings).values():
        chunk = stored.chunk
        assert document.text[chunk.char_start : chunk.char_end] == chunk.text
    _assert_consistent(settings)


def test_deleted_file_is_pruned_and_explicit_folders_are_not(settings: Settings, embedder: Embedder) -> None:
    (settings.knowledge_dir / "small.md").write_text(SMALL_DOC, encoding="utf-8")
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    extra = settings.data_dir.parent / "extra"
    extra.mkdir()
    (extra / "other.md").write_text(SMALL_DOC.replace("示例", "样例"), encoding="utf-8")
    ingest(settings, embedder=embedder)
    ingest(settings, [extra], embedder=embedder)

    (settings.knowledge_dir / "small.md").unlink()
    report = ingest(settings, embedder=embedder)
    assert report.files_removed == 1 and report.chunks_removed > 0
    doc_ids = {s.chunk.doc_id for s in _stored(settings).values()}
    assert doc_ids == {SEED, "other.md"}  # the extra folder is not the knowledge dir's to prune

    (extra / "other.md").unlink()
    (extra / "keep.md").write_text(SMALL_DOC, encoding="utf-8")
    assert ingest(settings, [extra], embedder=embedder).files_removed == 0  # no prune unless asked
    assert ingest(settings, [extra], prune=True, embedder=embedder).files_removed == 1
    assert {s.chunk.doc_id for s in _stored(settings).values()} == {SEED, "keep.md"}


def test_bad_files_are_skipped_with_reasons(settings: Settings, embedder: Embedder) -> None:
    folder = settings.knowledge_dir
    (folder / "good.md").write_text(SMALL_DOC, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 64)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "table.xlsx").write_bytes(b"PK")
    report = ingest(settings, embedder=embedder)
    assert report.files_indexed == 1
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"empty.txt", "binary.txt", "broken.pdf", "broken.docx", "table.xlsx"}
    assert all(reason for reason in reasons.values())
    assert {s.chunk.doc_id for s in _stored(settings).values()} == {"good.md"}


def test_nothing_indexable_is_an_error(settings: Settings, embedder: Embedder) -> None:
    (settings.knowledge_dir / "empty.txt").write_bytes(b"   \n")
    with pytest.raises(NothingIndexedError, match=r"empty\.txt") as raised:
        ingest(settings, embedder=embedder)
    assert raised.value.report.skipped
    empty = settings.data_dir.parent / "empty-folder"
    empty.mkdir()
    with pytest.raises(NothingIndexedError, match="no files found"):
        ingest(settings, [empty], embedder=embedder)
    with pytest.raises(NothingIndexedError, match="no such file or folder"):
        ingest(settings, [empty / "missing"], embedder=embedder)


def test_file_that_breaks_keeps_its_last_good_chunks(settings: Settings, embedder: Embedder) -> None:
    path = settings.knowledge_dir / "small.md"
    path.write_text(SMALL_DOC, encoding="utf-8")
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    ingest(settings, embedder=embedder)
    kept = set(_stored(settings))
    path.write_bytes(b"\x00" * 100)
    report = ingest(settings, embedder=embedder)
    assert "last good version" in report.skipped[0].reason
    assert set(_stored(settings)) == kept


class _InterruptAfter:
    """Wraps the real embedder and raises KeyboardInterrupt (as Ctrl-C would) on the n-th batch."""

    def __init__(self, real: Embedder, calls: int) -> None:
        self.real, self.calls = real, calls

    def embed_passages(self, texts: list[str]) -> object:
        self.calls -= 1
        if self.calls < 0:
            raise KeyboardInterrupt
        return self.real.embed_passages(texts)


def test_interrupted_ingest_is_consistent_and_next_run_completes(settings: Settings, embedder: Embedder) -> None:
    for name in (SEED, LAW):
        shutil.copy(KNOWLEDGE / name, settings.knowledge_dir)
    (settings.knowledge_dir / "small.md").write_text(SMALL_DOC, encoding="utf-8")
    settings = settings.replace(embed_batch_size=2)  # groups of 32 chunks
    sizes = [len(_chunks(settings, settings.knowledge_dir / name)) for name in (LAW, SEED)]
    assert sizes[0] < 32 <= sum(sizes)  # the first group is the law and the seed, small.md comes next
    with pytest.raises(KeyboardInterrupt):
        ingest(settings, embedder=_InterruptAfter(embedder, math.ceil(sum(sizes) / 2)))  # type: ignore[arg-type]
    stored = _stored(settings)
    assert {s.chunk.doc_id for s in stored.values()} == {LAW, SEED}  # whole files only; small.md not started
    assert set(stored) < _expected_ids(settings)

    report = ingest(settings, embedder=embedder)
    assert report.files_unchanged == 2 and report.files_indexed == 1
    _assert_consistent(settings)


def test_crash_between_add_and_delete_heals(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill after a file's new chunks are written but before its stale ones are deleted."""
    path = settings.knowledge_dir / "small.md"
    path.write_text(SMALL_DOC, encoding="utf-8")
    ingest(settings, embedder=embedder)
    path.write_text(SMALL_DOC.replace("联席会议制度", "联席会议和协商制度"), encoding="utf-8")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ChunkStore, "delete", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest(settings, embedder=embedder)
    monkeypatch.undo()

    report = ingest(settings, embedder=embedder)
    assert report.chunks_added == 0  # the new chunks were already written
    assert report.chunks_removed >= 1
    _assert_consistent(settings)


def test_model_mismatch_is_refused_with_reindex_hint(settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    (settings.knowledge_dir / "small.md").write_text(SMALL_DOC, encoding="utf-8")
    ingest(settings, embedder=embedder)
    other_model = tmp_path / "other-model"
    shutil.copytree(Path(settings.index.embedding_model), other_model)
    (other_model / "config.json").write_text(
        (other_model / "config.json").read_text().replace('"hidden_dropout_prob": 0.1', '"hidden_dropout_prob": 0.2')
    )
    other = settings.replace(embedding_model=str(other_model))
    with pytest.raises(ModelMismatchError, match=r"coopbot reindex --force"):
        ingest(other, embedder=embedder)
    with pytest.raises(ModelMismatchError):
        Retriever(other, embedder=embedder)

    report = reindex(other)
    assert report.chunks_added == report.chunks_total > 0
    assert Retriever(other).search("联席会议制度", mode="dense")[0].chunk.doc_id == "small.md"


def test_chunk_settings_change_recuts_without_reembedding_same_text(settings: Settings, embedder: Embedder) -> None:
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    ingest(settings, embedder=embedder)
    smaller = settings.replace(chunk_size=300, chunk_overlap=40)
    assert pipeline_fingerprint(smaller) != pipeline_fingerprint(settings)
    report = ingest(smaller, embedder=embedder)
    assert report.files_indexed == 1
    _assert_consistent(smaller)


def test_dense_search_finds_the_passage(settings: Settings, embedder: Embedder) -> None:
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    shutil.copy(KNOWLEDGE / LAW, settings.knowledge_dir)
    ingest(settings, embedder=embedder)
    retriever = Retriever(settings, embedder=embedder)
    hits = retriever.search("欧盟用什么计划推动成员国科研合作？", k=3, mode="dense")
    assert hits[0].chunk.doc_id == SEED and "地平线2020" in hits[0].chunk.text
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    with pytest.raises(ValueError, match="empty"):
        retriever.search("   ", mode="dense")


def test_csv_rows_are_searchable(settings: Settings, embedder: Embedder) -> None:
    shutil.copy(CSV_DATA, settings.knowledge_dir)
    shutil.copy(KNOWLEDGE / SEED, settings.knowledge_dir)
    report = ingest(settings, embedder=embedder)
    assert report.files_indexed == 2 and not report.skipped
    hits = Retriever(settings, embedder=embedder).search("青鸟港口联运中心由哪个城市牵头？", k=3)
    assert hits[0].chunk.doc_id == CSV_DATA.name and "牵头城市：宁波" in hits[0].chunk.text
    assert hits[0].chunk.doc_title == "regional-cooperation-projects"


def _coopbot(settings: Settings) -> tuple[list[str], dict[str, str]]:
    env = dict(
        os.environ,
        COOPBOT_DATA_DIR=str(settings.data_dir),
        COOPBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir),
        COOPBOT_EMBEDDING_MODEL=settings.index.embedding_model,
    )
    return [str(Path(sys.executable).parent / "coopbot"), "ingest", "--json"], env


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_real_process_stopped_mid_ingest_recovers(settings: Settings, signal_number: int) -> None:
    """A real `coopbot ingest` stopped while embedding; wherever it stopped, the next run completes it."""
    for name in (LAW, SEED, "law-science-and-technology-progress-2021.md"):
        shutil.copy(KNOWLEDGE / name, settings.knowledge_dir)
    command, env = _coopbot(settings)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (settings.data_dir / "chroma" / "chroma.sqlite3").exists():  # the model is loaded after the index opens
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(10)  # model load and the first batches of the first files
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=60)
    if signal_number == signal.SIGINT and process.returncode != 0:
        assert process.returncode == 130 and "run the same command again" in stderr

    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(finished.stdout)
    assert summary["files_indexed"] + summary["files_unchanged"] == 3
    _assert_consistent(settings)
