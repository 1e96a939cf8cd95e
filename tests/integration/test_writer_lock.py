"""One writer per embedded index: a second process is refused with a message naming the holder.

Real processes (the failure is between processes) and real Chroma; the fake embedder, since what is
embedded does not matter here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.index import writer_lock
from coopbot.index.bm25 import index_path
from coopbot.index.hybrid import HybridIndex
from coopbot.index.writer_lock import IndexBusy
from coopbot.ingest import pipeline

from ..conftest import ROOT, coopbot
from ..fakes.embedder import fake_embedder, fake_settings

HOLD = """
import sys, time
from coopbot.config import Settings
from coopbot.index import writer_lock
from coopbot.index.bm25 import index_path
writer_lock.acquire(Settings(data_dir=sys.argv[1]), "coopbot serve (test)")
print("holding", flush=True)
time.sleep(600)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / "a.md").write_text("# 合作\n\n长三角示范区建设科技创新共同体。", encoding="utf-8")
    return settings


def _holder(settings: Settings) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.data_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_the_index(
    settings: Settings,
) -> None:
    embedder = fake_embedder(settings)
    holder = _holder(settings)
    try:
        with pytest.raises(IndexBusy, match=rf"coopbot serve \(test\) \(pid {holder.pid} .*knowledge tab"):
            pipeline.ingest(settings, embedder=embedder)
        with pytest.raises(IndexBusy):
            HybridIndex(settings).drop()
        assert HybridIndex(settings).count() == 0  # reading is allowed, and nothing was written
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops a dead holder's lock: nothing stale remains
        holder.wait()
    report = pipeline.ingest(settings, embedder=embedder)
    assert report.files_indexed == 1 and not writer_lock.holds(settings)


def test_a_reader_heals_bm25_in_memory_and_leaves_the_writers_file_alone(settings: Settings) -> None:
    pipeline.ingest(settings, embedder=fake_embedder(settings))
    index_path(settings).unlink()
    holder = _holder(settings)
    try:
        reader = HybridIndex(settings)
        assert reader.refresh().added == len(reader.records()) > 0
        assert reader.lexical.search("科技创新共同体", 1) and not index_path(settings).exists()
    finally:
        holder.kill()
        holder.wait()
    assert HybridIndex(settings).refresh().added > 0 and index_path(settings).exists()  # free again: it heals the file


def test_the_cli_refuses_with_one_clear_line(settings: Settings) -> None:
    holder = _holder(settings)
    env = {"COOPBOT_DATA_DIR": str(settings.data_dir), "COOPBOT_KNOWLEDGE_DIR": str(settings.knowledge_dir)}
    try:
        done = coopbot("ingest", env={**env, "COOPBOT_EMBEDDING_MODEL": settings.index.embedding_model})
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode != 0
    assert f"pid {holder.pid}" in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_one_process_shares_its_lock_between_components(settings: Settings) -> None:
    with writer_lock.writer(settings):
        assert writer_lock.holds(settings)
        with HybridIndex(settings).writing():  # a second component of the same process writes in turn
            pass
        assert writer_lock.holds(settings)
    assert not writer_lock.holds(settings)
    server = settings.replace(chroma_mode="server")
    assert writer_lock.acquire(server) is False and writer_lock.holds(server)  # a Chroma server needs no lock
