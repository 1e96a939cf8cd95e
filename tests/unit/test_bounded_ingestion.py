"""Ingestion stays within bounds (issue 14): inside its folder, within a chunk's length, in linear time.

Fault tests: links out of the knowledge folder, a 2 MB file without punctuation, lines of hundreds of
thousands of spaces. The time limits are generous guards against quadratic blow-up (quadratic code takes
minutes on these inputs), not benchmarks.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from coopbot.answering.extractive import compose, score_sentences
from coopbot.answering.kinds import asked_kinds, holds_asked_kind
from coopbot.config import Settings
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest import pipeline
from coopbot.ingest.chunking import chunk_document
from coopbot.ingest.loaders import load_document
from coopbot.schema import Chunk, Document, Hit

from ..fakes.embedder import fake_embedder, fake_settings

SECRET = "口令\n\n机密口令：hunter2，仅限管理员使用。"
# Seconds: linear code needs one or two on the largest of these inputs, quadratic code minutes.
QUICK = 5.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / "a.md").write_text("# 长三角\n\n长三角示范区建设科技创新共同体。", encoding="utf-8")
    return settings


def _outside(tmp_path: Path) -> Path:
    """A folder beside the knowledge folder, holding a secret file and a subfolder."""
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    (outside / "more" / "notes.md").write_text(SECRET, encoding="utf-8")
    return outside


def _bound(settings: Settings) -> int:
    """The longest chunk the chunker may make."""
    return settings.index.chunk_size + settings.index.chunk_min_size


def _doc(text: str, doc_id: str = "d.md") -> Document:
    return Document(doc_id, Path(doc_id), "题", text, "0" * 64, "utf-8")


def _chunks(doc: Document, settings: Settings) -> list[Chunk]:
    index = settings.index
    return chunk_document(doc, size=index.chunk_size, min_size=index.chunk_min_size, overlap=index.chunk_overlap)


# --- links ------------------------------------------------------------------------------------------------


def test_a_link_out_of_the_folder_is_skipped_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    (settings.knowledge_dir / "passwd.txt").symlink_to(outside / "secret.txt")
    (settings.knowledge_dir / "elsewhere").symlink_to(outside / "more", target_is_directory=True)

    sources, skipped = pipeline.discover([settings.knowledge_dir], settings)

    assert [s.doc_id for s in sources] == ["a.md"]
    assert sorted(Path(s.path).name for s in skipped) == ["elsewhere", "passwd.txt"]
    assert all("outside the folder" in s.reason for s in skipped)
    # Named explicitly, a link is read: whoever names a file chose it.
    sources, skipped = pipeline.discover([settings.knowledge_dir / "passwd.txt"], settings)
    assert [s.path.name for s in sources] == ["passwd.txt"] and not skipped


def test_a_file_that_became_a_link_out_of_the_folder_leaves_the_index(settings: Settings, tmp_path: Path) -> None:
    embedder = fake_embedder(settings)
    passwd = settings.knowledge_dir / "passwd.txt"
    passwd.write_text(SECRET, encoding="utf-8")
    pipeline.ingest(settings, embedder=embedder)
    passwd.unlink()
    passwd.symlink_to(_outside(tmp_path) / "secret.txt")

    report = pipeline.ingest(settings, embedder=embedder)

    records = HybridIndex(settings).records().values()
    assert {r.doc_id for r in records} == {"a.md"}
    assert [(s.path, "outside the folder" in s.reason) for s in report.skipped] == [(str(passwd), True)]
    assert report.files_removed == 1


def test_links_inside_the_folder_are_followed_once(settings: Settings) -> None:
    knowledge = settings.knowledge_dir
    (knowledge / "docs").mkdir()
    (knowledge / "docs" / "b.md").write_text("# 大湾区\n\n粤港澳大湾区建设国际科技创新中心。", encoding="utf-8")
    (knowledge / ".archive").mkdir()
    (knowledge / ".archive" / "c.md").write_text("# 京津冀\n\n京津冀协同发展。", encoding="utf-8")
    (knowledge / "alias.md").symlink_to(knowledge / "docs" / "b.md")  # the same file under a second name
    (knowledge / "mirror").symlink_to(knowledge / "docs", target_is_directory=True)  # the same folder again
    (knowledge / "docs" / "up").symlink_to(knowledge, target_is_directory=True)  # a loop
    (knowledge / "shown.md").symlink_to(knowledge / ".archive" / "c.md")  # inside, reachable only by the link

    sources, skipped = pipeline.discover([knowledge], settings)

    assert sorted(s.path.relative_to(knowledge).as_posix() for s in sources) == ["a.md", "docs/b.md", "shown.md"]
    assert len({s.doc_id for s in sources}) == 3 and not skipped


# --- chunk length -----------------------------------------------------------------------------------------


def _no_punctuation(chars: int) -> str:
    """Chinese text without a single punctuation mark, space or line break."""
    return ("合作创新发展协同推进建设科技成果转化区域一体化" * (chars // 24 + 1))[:chars]


def test_a_file_without_punctuation_is_cut_into_bounded_chunks(settings: Settings) -> None:
    text = _no_punctuation(700_000)  # 2.1 MB of UTF-8
    path = settings.knowledge_dir / "no-punctuation.txt"
    path.write_text(text, encoding="utf-8")

    began = time.perf_counter()
    chunks = _chunks(load_document(path, path.name), settings)

    assert time.perf_counter() - began < QUICK
    assert max(len(c.text) for c in chunks) <= _bound(settings)
    assert "".join(c.text for c in chunks) == text  # pieces of a cut sentence are not repeated as overlap


def test_only_a_sentence_longer_than_the_bound_is_cut() -> None:
    fits = "长" * 499 + "。"
    assert [c.text for c in chunk_document(_doc(fits), size=450, min_size=50, overlap=0)] == [fits]
    too_long = "长" * 500 + "。"
    assert [len(c.text) for c in chunk_document(_doc(too_long), size=450, min_size=50, overlap=0)] == [450, 51]


def test_a_long_sentence_is_cut_between_words_when_it_has_no_clause_marks() -> None:
    words = ["词" * (5 + i % 7) for i in range(400)]
    text = " ".join(words) + "。"
    chunks = chunk_document(_doc(text), size=200, min_size=50)
    assert max(len(c.text) for c in chunks) <= 250
    assert [w for c in chunks for w in c.text.rstrip("。").split(" ")] == words  # no word is cut


@pytest.mark.parametrize(("size", "min_size", "overlap"), [(450, 150, 80), (80, 0, 30), (100, 60, 40)])
def test_no_chunk_exceeds_the_bound_whatever_the_text(size: int, min_size: int, overlap: int) -> None:
    pick = random.Random(size).choice
    pieces = ["文字" * 400, "文字" * 40, *"文，。 \n", " " * 60, "\n\n", "## 第一章 标题\n", "1. 条目\n", "“引文”"]
    for _ in range(40):
        text = "".join(pick(pieces) for _ in range(300))
        chunks = chunk_document(_doc(text), size=size, min_size=min_size, overlap=overlap)
        assert all(len(c.text) <= size + min_size for c in chunks), text


def test_an_answer_quoting_such_a_file_is_bounded(settings: Settings) -> None:
    text = _no_punctuation(200_000)
    chunks = _chunks(_doc(text), settings)
    hits = [Hit(chunk, 1.0, rank) for rank, chunk in enumerate(chunks[:5], start=1)]
    question = "合作创新发展协同推进是什么？"
    candidates = score_sentences(question, question, hits, fake_embedder(settings), settings.answer, lambda _: 1.0)

    answer, citations, _ = compose(question, candidates, settings.answer)

    assert answer and len(answer) <= len(citations) * (_bound(settings) + 20)


# --- linear time ------------------------------------------------------------------------------------------

SPACES = " " * 200_000


@pytest.mark.parametrize("suffix", [".md", ".txt"])
def test_a_heading_line_of_spaces_is_read_and_cut_quickly(settings: Settings, suffix: str) -> None:
    path = settings.knowledge_dir / f"heading{suffix}"
    path.write_text(f"# 标题{SPACES}尾 #\n\n正文。\n", encoding="utf-8")

    began = time.perf_counter()
    doc = load_document(path, path.name)
    chunks = _chunks(doc, settings)

    assert time.perf_counter() - began < QUICK
    assert [c.text for c in chunks] == ["正文。"]


# Lines that made a regex backtrack: the heading parsers, the furniture rules, the page title's site suffix.
PATHOLOGICAL = [
    "# 标题{spaces}尾",
    "时间{spaces}尾",
    "2024-01-01{spaces}尾",
    "1{spaces}尾",
    "阅读量{spaces}尾",
    "正文{spaces}正文。",
]


@pytest.mark.parametrize("suffix", [".txt", ".md", ".html"])
def test_a_megabyte_of_pathological_lines_is_read_and_cut_quickly(settings: Settings, suffix: str) -> None:
    spaces = " " * 20_000
    lines = [line.format(spaces=spaces) for line in PATHOLOGICAL] * 9  # 1 MB; furniture rules see head and tail
    body = "\n".join(lines)
    if suffix == ".html":
        paragraphs = "".join(f"<p>{line}</p>" for line in lines)  # a browser shows a run of spaces as one
        body = f"<html><head><title>标题{SPACES}尾</title></head><body>{paragraphs}</body></html>"
    path = settings.knowledge_dir / f"pathological{suffix}"
    path.write_text(body, encoding="utf-8")
    assert path.stat().st_size > 1_000_000

    began = time.perf_counter()
    chunks = _chunks(load_document(path, path.name), settings)

    assert time.perf_counter() - began < QUICK
    assert chunks and max(len(c.text) for c in chunks) <= _bound(settings)


def test_a_long_list_of_lead_items_is_cut_quickly() -> None:
    text = "\n".join("（一）甲。\n乙。" for _ in range(50_000))  # 1.1 MB, one list of lead headings ("（一）甲。")
    began = time.perf_counter()
    chunks = chunk_document(_doc(text))
    assert time.perf_counter() - began < QUICK
    assert "".join(c.text for c in chunks).count("乙。") == 50_000


def test_a_long_run_of_numerals_is_judged_quickly() -> None:
    kinds = asked_kinds("罚款是多少元？")
    began = time.perf_counter()
    assert not holds_asked_kind(kinds, "1" * 200_000 + "次")
    assert time.perf_counter() - began < QUICK
