"""`coopbot doctor`: check the index an operator cannot see into, say what is wrong, repair what can be.

Checks, in order (a store that cannot be read stops the rest):
- store: the Chroma store answers (a server is up, the embedded sqlite file is not damaged);
- model: the collection's vectors come from the configured embedding model;
- chunks: every chunk has the metadata search and answers need;
- bm25: the BM25 file holds exactly the collection's chunks, with the words the tokeniser gives them
  (a sample is re-tokenised: a file with the right ids and wrong words passes every id check);
- files: no chunk belongs to a knowledge-dir file that no longer exists;
- documents.json: every entry is well-formed and names an indexed document.
With `repair`, BM25 is rebuilt from the collection, ghosts are removed and documents.json rewritten;
a wrong model or broken chunk metadata needs `coopbot reindex --force`, which the finding says.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from coopbot.config import Settings
from coopbot.index.bm25 import LexicalIndex, index_path
from coopbot.index.chroma import ChunkRecord, ModelMismatchError, StoreError, StoreUnavailable
from coopbot.index.hybrid import HybridIndex
from coopbot.ingest.documents import KnowledgeBase
from coopbot.ingest.pipeline import KNOWLEDGE_ROOT
from coopbot.text.words import tokenize

Status = Literal["ok", "problem", "repaired"]
_SAMPLE = 200  # chunks whose words are re-tokenised
_NEEDED = ("doc_id", "doc_title", "heading_path", "char_start", "char_end", "content_hash", "ordinal")


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""  # what the operator should do when it is still a problem

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def examine(settings: Settings, *, repair: bool = False) -> list[Finding]:
    """Every check's finding; with `repair`, what could be repaired is, and says so."""
    try:
        index = HybridIndex(settings)
        records = index.records()
    except ModelMismatchError as exc:
        return [
            Finding("store", "ok", "the store answers"),
            Finding("model", "problem", str(exc), "coopbot reindex --force"),
        ]
    except StoreError as exc:
        hint = exc.hint if isinstance(exc, StoreUnavailable) else "see the message"
        return [Finding("store", "problem", str(exc), hint)]
    findings = [
        Finding("store", "ok", f"the store answers: {len(records)} chunks"),
        Finding("model", "ok", index.identity.name),
    ]
    broken = [chunk_id for chunk_id, record in records.items() if any(key not in record.metadata for key in _NEEDED)]
    findings.append(
        Finding("chunks", "problem", f"{len(broken)} chunks lack metadata, e.g. {broken[0]}", "coopbot reindex --force")
        if broken
        else Finding("chunks", "ok", "every chunk has its metadata")
    )
    findings.append(_bm25(index, set(records), repair))
    findings.append(_ghosts(settings, index, records, repair))
    if findings[-1].status == "repaired":
        records = index.records()  # the ghosts are gone
    findings.append(_stamps(settings, index, records, repair))
    return findings


def _bm25(index: HybridIndex, ids: set[str], repair: bool) -> Finding:
    stored = LexicalIndex.load(index_path(index.settings))
    problems = []
    if stored.ids != ids:
        problems.append(f"{len(ids - stored.ids)} chunks missing and {len(stored.ids - ids)} extra")
    sample = random.Random(0).sample(sorted(ids & stored.ids), min(_SAMPLE, len(ids & stored.ids)))
    chunks, _ = index.get(sample)
    wrong = [chunk_id for chunk_id, chunk in chunks.items() if stored.tokens(chunk_id) != tokenize(chunk.embed_text)]
    if wrong:
        problems.append(f"{len(wrong)} of {len(sample)} sampled chunks have other words than their text gives")
    if not problems:
        return Finding("bm25", "ok", f"{len(stored)} chunks, words match their texts")
    detail = "the BM25 file is out of step with the collection: " + "; ".join(problems)
    if not repair:
        return Finding("bm25", "problem", detail, "coopbot doctor --repair (rebuilds BM25 from the collection)")
    index.rebuild_lexical()
    return Finding("bm25", "repaired", detail + "; rebuilt from the collection")


def _ghosts(settings: Settings, index: HybridIndex, records: dict[str, ChunkRecord], repair: bool) -> Finding:
    knowledge = settings.knowledge_dir.resolve()
    legacy = str(knowledge)
    ghosts: dict[str, list[str]] = {}
    for chunk_id, record in records.items():
        if record.root in (KNOWLEDGE_ROOT, legacy) and not (knowledge / record.doc_id).is_file():
            ghosts.setdefault(record.doc_id, []).append(chunk_id)
    if not ghosts:
        return Finding("files", "ok", "every knowledge-dir document's file exists")
    detail = f"{len(ghosts)} indexed documents have no file in {knowledge}: {', '.join(sorted(ghosts)[:5])}"
    if not repair:
        return Finding("files", "problem", detail, "coopbot ingest (prunes them), or coopbot doctor --repair")
    with index.writing() as writes:
        writes.delete(chunk_id for chunk_ids in ghosts.values() for chunk_id in chunk_ids)
    return Finding("files", "repaired", detail + "; their chunks were removed")


def _stamps(settings: Settings, index: HybridIndex, records: dict[str, ChunkRecord], repair: bool) -> Finding:
    path = settings.data_dir / "documents.json"
    if not path.exists():
        return Finding("documents.json", "ok", "absent (dates show as unknown until the next index change)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data if isinstance(data, dict) else None
    except (OSError, ValueError):
        entries = None
    indexed = {record.doc_id for record in records.values()}
    if entries is None:
        problem = "is not a JSON object of documents"
    else:
        bad = [
            doc_id
            for doc_id, entry in entries.items()
            if not (
                isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("source_hash", "indexed_at"))
            )
        ]
        unknown = [doc_id for doc_id in entries if doc_id not in indexed]
        if not bad and not unknown:
            return Finding("documents.json", "ok", f"{len(entries)} documents")
        problem = f"has {len(bad)} malformed entries and {len(unknown)} for documents not indexed"
    if not repair:
        return Finding("documents.json", "problem", f"{path} {problem}", "coopbot doctor --repair (rewrites it)")
    KnowledgeBase(settings, index=index).stamp()
    return Finding("documents.json", "repaired", f"{path} {problem}; rewritten from the index")
