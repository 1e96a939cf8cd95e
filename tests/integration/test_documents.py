"""The knowledge-base admin core: safe upload names, list/add/replace/delete through the real ingest
pipeline (real model, real Chroma), the index lock, and the feedback store."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from coopbot.config import Settings
from coopbot.ingest.documents import DocumentError, KnowledgeBase, RWLock, safe_filename
from coopbot.ingest.loaders import SUPPORTED_SUFFIXES
from coopbot.schema import Answer, Citation
from coopbot.web.feedback import Feedback, FeedbackStore


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("报告.md", "报告.md"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.PDF", "evil.pdf"),
        (".hidden.md", "hidden.md"),
        ("a/b/c d (1).docx", "c d (1).docx"),
        ("we<ird>|na:me?.html", "we_ird_na_me.html"),
        ("..md", "document.md"),
        ("x\x00y\u202e.txt", "xy.txt"),
        ("长" * 300 + ".md", "长" * 117 + ".md"),
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_every_format_ingestion_reads_can_be_uploaded(suffix: str) -> None:
    assert safe_filename(f"报告{suffix.upper()}") == f"报告{suffix}"


@pytest.mark.parametrize("name", ["run.exe", "noext", "archive.tar.gz", "image.png", "doc.md.exe"])
def test_unsupported_types_are_refused(name: str) -> None:
    with pytest.raises(DocumentError) as raised:
        safe_filename(name)
    assert raised.value.status == 415


def test_rwlock_writer_excludes_readers_and_goes_first() -> None:
    lock = RWLock()
    assert lock.acquire_read() and lock.acquire_read()  # readers share
    events: list[str] = []

    def writer() -> None:
        lock.acquire_write()
        events.append("write")
        time.sleep(0.05)
        lock.release_write()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.05)
    assert not lock.acquire_read(timeout=0.05), "a waiting writer goes before new readers"
    lock.release_read()
    lock.release_read()
    thread.join()
    assert events == ["write"] and lock.acquire_read(timeout=1)
    lock.release_read()


def test_feedback_store_appends_json_lines(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "data" / "feedback.jsonl")
    citation = Citation(1, "c1", "a.md", "标题", ("标题", "第一章"), "引文。", 0, 3, "引文。后文。")
    answer = Answer(question="问？", text="引文。[1]", citations=[citation], refused=False)
    store.record(Feedback.of(answer, "up"))
    store.record(Feedback.of(Answer(question="问2", text="没有", citations=[], refused=True), "down"))
    votes = store.read()
    assert [v["vote"] for v in votes] == ["up", "down"]
    assert votes[0]["citations"][0]["doc_file"] == "a.md" and votes[0]["citations"][0]["quote"] == "引文。"
    assert votes[1]["refused"] is True and votes[0]["time"]
    with pytest.raises(ValueError):
        store.record(Feedback("q", "a", [], "maybe"))  # type: ignore[arg-type]


DOC_A = "# 青藤协作公约\n\n## 第一章 总则\n\n第一条 青藤协作公约的签署城市共有七个，秘书处设在芜湖。\n"
DOC_B = "# 紫荆合作备忘录\n\n第一条 紫荆合作备忘录约定每年举办两次联合路演。\n\n第二条 路演地点由成员城市轮流承办。\n"


def test_add_list_replace_delete(settings: Settings) -> None:
    (settings.knowledge_dir / "a.md").write_text(DOC_A, encoding="utf-8")
    knowledge = KnowledgeBase(settings)
    knowledge.update()
    listed = {d.doc_id: d for d in knowledge.list()}
    assert listed["a.md"].title == "青藤协作公约" and listed["a.md"].chunks >= 1
    assert listed["a.md"].in_knowledge_dir and listed["a.md"].indexed_at

    name, report = knowledge.add("../uploads/紫荆 备忘录.md", DOC_B.encode())
    assert name == "紫荆 备忘录.md" and (settings.knowledge_dir / name).is_file()
    assert report.chunks_added >= 1 and report.files_unchanged == 1
    assert {d.doc_id for d in knowledge.list()} == {"a.md", name}
    assert not list(settings.knowledge_dir.glob(".upload-*")), "no temporary file is left behind"

    from coopbot.retrieval.retriever import Retriever

    retriever = Retriever(settings)
    assert retriever.search("紫荆合作备忘录的路演", 1)[0].chunk.doc_id == name

    replaced = DOC_B.replace("两次", "三次").encode()
    _, again = knowledge.add(name, replaced)
    assert again.files_indexed == 1
    assert "三次" in retriever.search("紫荆合作备忘录每年举办几次路演", 1)[0].chunk.text

    removed = knowledge.delete(name)
    assert removed >= 1 and not (settings.knowledge_dir / name).exists()
    assert [d.doc_id for d in knowledge.list()] == ["a.md"]
    assert all(hit.chunk.doc_id == "a.md" for hit in retriever.search("紫荆合作备忘录", 3)), "BM25 forgot it too"
    with pytest.raises(DocumentError) as missing:
        knowledge.delete(name)
    assert missing.value.status == 404


def test_bad_uploads_are_refused_with_reasons(settings: Settings) -> None:
    knowledge = KnowledgeBase(settings.replace(max_upload_mb=0.001))
    with pytest.raises(DocumentError) as too_big:
        knowledge.add("big.md", ("字" * 2000).encode())
    assert too_big.value.status == 413
    knowledge = KnowledgeBase(settings)
    with pytest.raises(DocumentError) as empty:
        knowledge.add("empty.md", b"")
    assert empty.value.status == 400
    with pytest.raises(DocumentError, match="无法读取"):
        knowledge.add("broken.pdf", b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(DocumentError) as wrong_type:
        knowledge.add("tool.exe", b"MZ")
    assert wrong_type.value.status == 415
    assert list(settings.knowledge_dir.iterdir()) == [], "nothing refused is saved"


def test_service_warm_up_embeds_every_sentence_in_the_background(settings: Settings) -> None:
    from coopbot.text.sentences import split_sentences
    from coopbot.web.service import Service

    (settings.knowledge_dir / "a.md").write_text(DOC_A + DOC_B, encoding="utf-8")
    KnowledgeBase(settings).update()
    service = Service(settings)
    service.warm_up().join(timeout=120)
    assert service.warmed and service.health()["warmed"]
    cached = service.assistant.embedder._sentences
    text = (settings.knowledge_dir / "a.md").read_text(encoding="utf-8")
    sentence = next(text[s:e] for s, e in split_sentences(text) if "秘书处设在芜湖" in text[s:e])
    assert sentence.strip() in {key.strip() for key in cached}


BAD_STAMPS = {
    "a null entry": '{"a.md": null}',
    "a list entry": '{"a.md": ["x", "y"]}',
    "a string entry": '{"a.md": "2024-01-01"}',
    "missing keys": '{"a.md": {"indexed_at": "2024-01-01 00:00:00"}}',
    "wrong value types": '{"a.md": {"source_hash": 7, "indexed_at": ["today"]}}',
    "a list at the top": '[{"a.md": {"source_hash": "x", "indexed_at": "y"}}]',
    "null at the top": "null",
    "a number at the top": "42",
    "invalid JSON": '{"a.md": {"source_hash": ',
    "not UTF-8": b'{"a.md": "\xff\xfe"}',
    "empty": "",
}


@pytest.mark.parametrize("content", BAD_STAMPS.values(), ids=BAD_STAMPS.keys())
def test_a_malformed_documents_json_never_breaks_listing_or_the_server(
    tmp_path: Path, content: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """documents.json only dates the documents: a bad entry or file costs a date, logged, never a route."""
    from fastapi.testclient import TestClient

    from coopbot.web.api import create_app

    from ..fakes.embedder import fake_settings
    from .serving import slow_service

    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / "a.md").write_text(DOC_A, encoding="utf-8")
    (settings.knowledge_dir / "b.md").write_text(DOC_B, encoding="utf-8")
    service, _ = slow_service(settings)
    service.knowledge.update()
    stamps = settings.data_dir / "documents.json"
    good = json.loads(stamps.read_text(encoding="utf-8"))
    if content and not isinstance(content, bytes) and content.startswith('{"a.md"') and content.endswith("}"):
        content = json.dumps({**json.loads(content), "b.md": good["b.md"]})  # the good entry beside it survives
    stamps.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))

    listed = {d.doc_id: d for d in service.knowledge.list()}
    assert set(listed) == {"a.md", "b.md"} and listed["a.md"].indexed_at == ""
    if '"b.md"' in stamps.read_text(encoding="utf-8", errors="replace"):
        assert listed["b.md"].indexed_at == good["b.md"]["indexed_at"]
    if content:
        assert "documents.json" in caplog.text, "the problem is logged"

    with TestClient(create_app(service)) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert health.json()["documents"] == 2
        documents = client.get("/api/documents")
        assert documents.status_code == 200, documents.text
        assert {d["doc_id"] for d in documents.json()["documents"]} == {"a.md", "b.md"}

    service.knowledge.update()  # the next index change writes the file whole again
    rewritten = json.loads(stamps.read_text(encoding="utf-8"))
    assert set(rewritten) == {"a.md", "b.md"} and all(entry["indexed_at"] for entry in rewritten.values())


def test_documents_json_problems_are_logged_once_per_version(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ..fakes.embedder import fake_settings
    from .serving import slow_service

    settings = fake_settings(tmp_path)
    (settings.knowledge_dir / "a.md").write_text(DOC_A, encoding="utf-8")
    service, _ = slow_service(settings)
    service.knowledge.update()
    (settings.data_dir / "documents.json").write_text('{"a.md": null}', encoding="utf-8")
    for _ in range(5):
        service.knowledge.list()
    assert caplog.text.count("documents.json") == 1
