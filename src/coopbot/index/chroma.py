"""The Chroma collection that holds the chunks, embedded (one process) or behind `chroma run`.

Everything the index knows about a chunk travels in its Chroma metadata, so the collection alone
is the source of truth for what is indexed: no side file can drift out of step with it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index.embedder import ModelIdentity
from coopbot.index.errors import StoreError as StoreError  # re-exported: callers import it from here
from coopbot.index.errors import StoreUnavailable as StoreUnavailable
from coopbot.index.errors import guarded, translate_errors
from coopbot.schema import Chunk, Hit

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

MODEL_KEY = "coopbot:embedding_model"
FINGERPRINT_KEY = "coopbot:embedding_fingerprint"
VERSION_KEY = "coopbot:version"  # a new random token after every change: how other processes notice one
_PAGE = 2000  # rows per `get` page when reading the whole collection


class ModelMismatchError(StoreError):
    """The collection holds vectors of another embedding model."""


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the index holds it, with the bookkeeping that incremental indexing needs."""

    chunk: Chunk
    source_hash: str  # the file version the chunk was cut from
    pipeline: str  # fingerprint of the reader + chunker settings that cut it
    doc_chunks: int  # how many chunks that file version has in all
    root: str  # the folder the file was ingested from (pruning is scoped to it)

    def metadata(self) -> dict[str, str | int]:
        """The Chroma metadata that carries everything but the text and the vector."""
        chunk = self.chunk
        return {
            "doc_id": chunk.doc_id,
            "doc_title": chunk.doc_title,
            "heading_path": json.dumps(list(chunk.heading_path), ensure_ascii=False),
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
            "content_hash": chunk.content_hash,
            "ordinal": chunk.ordinal,
            "source_hash": self.source_hash,
            "pipeline": self.pipeline,
            "doc_chunks": self.doc_chunks,
            "root": self.root,
        }


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk's metadata without its text: five times cheaper to read for a whole collection."""

    chunk_id: str
    metadata: dict[str, str | int]

    @property
    def doc_id(self) -> str:
        return str(self.metadata["doc_id"])

    def is_current(self, source_hash: str, pipeline: str, doc_chunks: int) -> bool:
        """Cut from this file version by this pipeline, as one of `doc_chunks` chunks."""
        meta = self.metadata
        return meta["source_hash"] == source_hash and meta["pipeline"] == pipeline and meta["doc_chunks"] == doc_chunks

    @property
    def root(self) -> str:
        return str(self.metadata["root"])


def indexed_model(settings: Settings) -> dict[str, Any] | None:
    """The embedding model the collection was built with (name, fingerprint), or None when there is no index.

    Reads the collection's metadata without creating the collection: `coopbot model info` asks it.
    """
    client = make_client(settings)
    with translate_errors(settings):
        names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
        if settings.index.collection not in names:
            return None
        metadata = client.get_collection(settings.index.collection, embedding_function=None).metadata or {}
    return {"model": metadata.get(MODEL_KEY), "fingerprint": metadata.get(FINGERPRINT_KEY)}


def make_client(settings: Settings) -> ClientAPI:
    """An embedded PersistentClient in the data dir, or an HttpClient for `chroma_mode = server`."""
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        from coopbot.index.chroma_http import connect
    except ImportError as exc:  # pragma: no cover - a broken install
        raise StoreError(f"chromadb cannot be imported ({exc}): pip install coopbot") from exc
    if settings.index.chroma_mode == "server":
        try:
            return connect(
                lambda: chromadb.HttpClient(
                    host=settings.index.chroma_host,
                    port=settings.index.chroma_port,
                    settings=ChromaSettings(anonymized_telemetry=False),
                ),
                settings.index.chroma_timeout_s,
            )
        except Exception as exc:
            address = f"{settings.index.chroma_host}:{settings.index.chroma_port}"
            raise StoreUnavailable(
                f"cannot reach the Chroma server at {address} ({' '.join(str(exc).split())})",
                "Start it with `chroma run --path DIR --host HOST --port PORT`, or set COOPBOT_CHROMA_MODE=embedded",
                "unreachable",
            ) from exc
    with translate_errors(settings):
        settings.chroma_path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(
            path=str(settings.chroma_path), settings=ChromaSettings(anonymized_telemetry=False)
        )


def _from_row(chunk_id: str, text: str, meta: dict[str, Any]) -> StoredChunk:
    chunk = Chunk(
        chunk_id=chunk_id,
        doc_id=str(meta["doc_id"]),
        doc_title=str(meta["doc_title"]),
        heading_path=tuple(json.loads(str(meta["heading_path"]))),
        text=text,
        char_start=int(meta["char_start"]),
        char_end=int(meta["char_end"]),
        content_hash=str(meta["content_hash"]),
        ordinal=int(meta["ordinal"]),
    )
    return StoredChunk(
        chunk, str(meta["source_hash"]), str(meta["pipeline"]), int(meta["doc_chunks"]), str(meta["root"])
    )


class ChunkStore:
    """One Chroma collection of chunks, tied to one embedding model (used through `hybrid.HybridIndex`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self._collection: Collection | None = None

    @guarded
    def open(self, identity: ModelIdentity) -> Collection:
        """Get or create the collection, refusing one whose vectors come from another model."""
        if self._collection is not None:
            return self._collection
        collection = self.client.get_or_create_collection(
            self.settings.index.collection,
            embedding_function=None,  # vectors always come from coopbot; Chroma's default would download
            metadata={MODEL_KEY: identity.name, FINGERPRINT_KEY: identity.fingerprint},
            configuration={"hnsw": {"space": "cosine"}},
        )
        stored = collection.metadata or {}
        if stored.get(FINGERPRINT_KEY) != identity.fingerprint:
            if collection.count() == 0:
                collection.modify(metadata={MODEL_KEY: identity.name, FINGERPRINT_KEY: identity.fingerprint})
            else:
                raise ModelMismatchError(
                    f"The collection '{self.settings.index.collection}' holds vectors of the embedding model "
                    f"{stored.get(MODEL_KEY)!r} (fingerprint {stored.get(FINGERPRINT_KEY)}), but the configured "
                    f"model is {identity.name!r} (fingerprint {identity.fingerprint}). Mixing them would make "
                    "search meaningless. Run `coopbot reindex --force` to rebuild the index with the configured "
                    "model, or set COOPBOT_EMBEDDING_MODEL back to the model the index was built with."
                )
        self._collection = collection
        return collection

    @guarded
    def records(self, identity: ModelIdentity) -> dict[str, ChunkRecord]:
        """Every chunk's id and metadata (no text, no vectors): what incremental indexing diffs against."""
        return {
            chunk_id: ChunkRecord(chunk_id, dict(meta or {}))
            for chunk_id, _, meta in self._rows(identity, include_text=False)
        }

    @guarded
    def chunks(self, identity: ModelIdentity) -> list[StoredChunk]:
        """Every chunk with its text, in collection order."""
        return [_from_row(chunk_id, text or "", dict(meta or {})) for chunk_id, text, meta in self._rows(identity)]

    @guarded
    def get(
        self, identity: ModelIdentity, ids: Sequence[str], *, query: npt.NDArray[np.float32] | None = None
    ) -> tuple[dict[str, Chunk], dict[str, float]]:
        """Chunks by id (missing ids are left out) and, given a unit query vector, each one's cosine to it."""
        collection = self.open(identity)
        include: list[Any] = ["documents", "metadatas"] + (["embeddings"] if query is not None else [])
        chunks: dict[str, Chunk] = {}
        cosines: dict[str, float] = {}
        for start in range(0, len(ids), self._batch()):
            page = collection.get(ids=list(ids[start : start + self._batch()]), include=include)
            rows = zip(page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True)
            chunks.update({cid: _from_row(cid, text or "", dict(meta or {})).chunk for cid, text, meta in rows})
            if query is not None and page.get("embeddings") is not None:
                vectors = np.asarray(page["embeddings"], dtype=np.float32)
                cosines.update(zip(page["ids"], (vectors @ query).tolist(), strict=True))
        return chunks, cosines

    def _rows(self, identity: ModelIdentity, include_text: bool = True) -> Iterator[tuple[str, str | None, Any]]:
        collection = self.open(identity)
        include: list[Any] = ["documents", "metadatas"] if include_text else ["metadatas"]
        offset = 0
        while True:
            page = collection.get(include=include, limit=_PAGE, offset=offset)
            ids = page["ids"]
            texts: list[str | None] = list(page["documents"] or []) if include_text else [None] * len(ids)
            yield from zip(ids, texts, page["metadatas"] or [], strict=True)
            if len(ids) < _PAGE:
                return
            offset += _PAGE

    @guarded
    def add(self, identity: ModelIdentity, chunks: Sequence[StoredChunk], vectors: npt.NDArray[np.float32]) -> None:
        """Write chunks with their vectors (upsert, so a repeated write after a crash is harmless)."""
        collection = self.open(identity)
        for start in range(0, len(chunks), self._batch()):
            batch = chunks[start : start + self._batch()]
            collection.upsert(
                ids=[s.chunk.chunk_id for s in batch],
                embeddings=vectors[start : start + len(batch)],
                documents=[s.chunk.text for s in batch],
                metadatas=[s.metadata() for s in batch],
            )

    @guarded
    def update_metadata(self, identity: ModelIdentity, chunks: Sequence[StoredChunk]) -> None:
        """Rewrite metadata (positions, file version) of chunks whose content, and vector, did not change."""
        collection = self.open(identity)
        for start in range(0, len(chunks), self._batch()):
            batch = chunks[start : start + self._batch()]
            collection.update(
                ids=[s.chunk.chunk_id for s in batch],
                metadatas=[s.metadata() for s in batch],
            )

    @guarded
    def delete(self, identity: ModelIdentity, ids: Iterable[str]) -> None:
        """Remove chunks by id."""
        collection = self.open(identity)
        ids = list(ids)
        for start in range(0, len(ids), self._batch()):
            collection.delete(ids=ids[start : start + self._batch()])

    @guarded
    def count(self, identity: ModelIdentity) -> int:
        """Number of chunks in the collection."""
        return int(self.open(identity).count())

    @guarded
    def query(self, identity: ModelIdentity, vector: npt.NDArray[np.float32], k: int) -> list[Hit]:
        """Nearest chunks to a query vector; score = cosine similarity."""
        collection = self.open(identity)
        result = collection.query(
            query_embeddings=vector.reshape(1, -1), n_results=k, include=["documents", "metadatas", "distances"]
        )
        hits: list[Hit] = []
        rows = zip(
            result["ids"][0],
            (result["documents"] or [[]])[0],
            (result["metadatas"] or [[]])[0],
            (result["distances"] or [[]])[0],
            strict=True,
        )
        for chunk_id, text, meta, distance in rows:
            if not meta or "doc_id" not in meta:  # deleted underneath a stale in-memory vector index: gone
                continue
            stored = _from_row(chunk_id, text or "", dict(meta))
            hits.append(Hit(stored.chunk, score=1.0 - float(distance), rank=len(hits) + 1))
        return hits

    @guarded
    def version(self) -> str | None:
        """The collection's change token, read fresh from the store (None: none written yet, or no collection)."""
        names = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        if self.settings.index.collection not in names:
            return None
        metadata = self.client.get_collection(self.settings.index.collection).metadata or {}
        token = metadata.get(VERSION_KEY)
        return str(token) if token else None

    @guarded
    def mark_changed(self, identity: ModelIdentity, token: str | None = None) -> str:
        """Give the collection a new change token (`token`, or a random one), keeping its model identity."""
        collection = self.open(identity)
        token = token or secrets.token_hex(8)
        metadata = {MODEL_KEY: identity.name, FINGERPRINT_KEY: identity.fingerprint, VERSION_KEY: token}
        collection.modify(metadata=metadata)
        return token

    @guarded
    def drop(self) -> None:
        """Delete the whole collection (for `reindex --force`)."""
        names = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        if self.settings.index.collection in names:
            self.client.delete_collection(self.settings.index.collection)
        self._collection = None

    def _batch(self) -> int:
        return min(int(self.client.get_max_batch_size()), 1000)
