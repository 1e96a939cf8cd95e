"""BM25 over Chinese words, persisted in the data dir and kept in step with the Chroma collection.

Text is matched in one form: half-width, one punctuation form, lower-case ASCII (`text.normalise.for_matching`),
simplified characters (`text.normalise.to_simplified`, so a traditional question finds a simplified passage
and back), then cut into words by jieba's search mode (whole words plus their dictionary sub-words, so
科技成果转化 also matches 科技成果 and 转化). Punctuation, whitespace and a few question words are dropped.
The tokenizer and its stopwords are `text.words`'; the index file records their fingerprint.

The index file (`data_dir/lexical/<collection>.json`) holds the words of every chunk by chunk id. Chunk
ids derive from content, so a chunk's words never change: an update tokenises only new chunks, and
the BM25 matrices (`bm25_matrix`: bm25s, sparse, scored without a Python loop over chunks) are built
from the stored words, or loaded from the cache next to the file when built from the same words. The
Chroma collection stays the source of truth: `sync` compares ids with it (metadata only) and fetches
the texts of missing chunks, which heals a deleted, stale or foreign index file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from coopbot.config import Settings
from coopbot.index.bm25_matrix import Bm25Matrix
from coopbot.text.words import STOPWORDS, load_jieba, tokenize

if TYPE_CHECKING:
    from coopbot.index.chroma import ChunkStore
    from coopbot.index.embedder import ModelIdentity

FORMAT = 1  # layout of the index file
TOKENIZER_VERSION = 1  # bump whenever `text.normalise.comparable` or `tokenize` changes what words a text gives


def tokenizer_fingerprint() -> str:
    """Changes with the tokeniser, so a stored index of another tokeniser's words is rebuilt, not mixed."""
    import jieba  # type: ignore[import-untyped]

    digest = hashlib.sha256(f"{FORMAT}/{TOKENIZER_VERSION}/{getattr(jieba, '__version__', '?')}/".encode())
    digest.update(" ".join(sorted(STOPWORDS)).encode())
    return digest.hexdigest()[:16]


def index_path(settings: Settings) -> Path:
    """The lexical index file of the configured collection."""
    return settings.data_dir / "lexical" / f"{settings.index.collection}.json"


@dataclass(frozen=True)
class SyncReport:
    """What a `sync` changed: chunk ids added (tokenised) and removed."""

    added: int
    removed: int
    fetched: int  # texts read back from Chroma because the caller did not have them

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class LexicalHit:
    """A chunk id with its BM25 score and 1-based rank."""

    chunk_id: str
    score: float
    rank: int


class LexicalIndex:
    """Chunk id -> words, with a BM25 model built on demand; optionally stored in a file.

    Thread-safe for concurrent searches; updates are expected from one thread at a time.
    """

    def __init__(self, path: Path | None = None, *, k1: float = 1.5, b: float = 0.75) -> None:
        self.path = path
        self.k1, self.b = k1, b
        self._tokens: dict[str, list[str]] = {}
        self._model: Bm25Matrix | None = None
        self.generation: str | None = None  # of the words in the file, when memory holds exactly them
        # The collection's change token these words were last made equal to (None: not known to be equal).
        self.collection_version: str | None = None
        self._lock = threading.Lock()
        self.loaded_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file when last read/written

    # -- contents ------------------------------------------------------------------------------------

    @property
    def ids(self) -> set[str]:
        return set(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._tokens

    def tokens(self, chunk_id: str) -> list[str]:
        return self._tokens[chunk_id]

    def update(self, added: Mapping[str, str], removed: Iterable[str] = ()) -> tuple[int, int]:
        """Tokenise the texts of ids not yet held, forget `removed` ids. Returns (added, removed) counts."""
        gone = [chunk_id for chunk_id in dict.fromkeys(removed) if chunk_id in self._tokens]
        new = {chunk_id: text for chunk_id, text in added.items() if chunk_id not in self._tokens}
        for chunk_id in gone:
            del self._tokens[chunk_id]
        for chunk_id, text in new.items():
            self._tokens[chunk_id] = tokenize(text)
        if gone or new:
            self._model = None
            self.generation = None
            self.collection_version = None
        return len(new), len(gone)

    # -- persistence ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, **bm25: float) -> LexicalIndex:
        """The index stored at `path`; empty if the file is missing, unreadable or from another tokeniser."""
        index = cls(path, **bm25)
        try:
            stat = path.stat()
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return index
        if not isinstance(data, dict) or data.get("tokenizer") != tokenizer_fingerprint():
            return index
        chunks = data.get("chunks")
        if isinstance(chunks, dict):
            index._tokens = {str(k): str(v).split() for k, v in chunks.items()}
            index.generation = str(data.get("generation") or "") or None
            index.collection_version = str(data.get("collection_version") or "") or None
        index.loaded_stamp = (stat.st_mtime_ns, stat.st_size)
        return index

    def save(self) -> None:
        """Write the file atomically (temp file + rename): a reader never sees half an index."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "tokenizer": tokenizer_fingerprint(),
            "generation": (generation := secrets.token_hex(8)),
            "collection_version": self.collection_version,
            "chunks": {chunk_id: " ".join(words) for chunk_id, words in sorted(self._tokens.items())},
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with temp.open("x", encoding="utf-8") as out:  # created with the usual permissions (umask)
                json.dump(data, out, ensure_ascii=False, separators=(",", ":"))
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        stat = self.path.stat()
        self.loaded_stamp = (stat.st_mtime_ns, stat.st_size)
        self.generation = generation

    def file_changed(self) -> bool:
        """The file was rewritten (by an ingest, or another process) since this index read or wrote it."""
        if self.path is None:
            return False
        try:
            stat = self.path.stat()
        except OSError:
            return self.loaded_stamp is not None
        return (stat.st_mtime_ns, stat.st_size) != self.loaded_stamp

    # -- keeping in step with Chroma -----------------------------------------------------------------

    def sync(
        self,
        store: ChunkStore,
        identity: ModelIdentity,
        *,
        ids: Iterable[str] | None = None,
        texts: Mapping[str, str] | None = None,
        persist: bool = True,
        version: str | None = None,
    ) -> SyncReport:
        """Make the held ids equal the collection's, then save if anything changed (or no file exists yet).

        `ids`: the collection's chunk ids if the caller already knows them (else read, metadata only).
        `texts`: embed texts the caller already has; the texts of other missing ids are read from Chroma.
        `persist`: False keeps the change in memory (a reader must not rewrite a file the writer owns).
        `version`: the collection's change token the ids were read at, remembered with the words.
        """
        wanted = set(ids) if ids is not None else set(store.records(identity))
        texts = texts or {}
        missing = [chunk_id for chunk_id in wanted if chunk_id not in self._tokens]
        known = {chunk_id: texts[chunk_id] for chunk_id in missing if chunk_id in texts}
        to_fetch = [chunk_id for chunk_id in missing if chunk_id not in known]
        fetched = fetch_embed_texts(store, identity, to_fetch)
        known.update(fetched)
        added, removed = self.update(known, [chunk_id for chunk_id in self._tokens if chunk_id not in wanted])
        changed_version = version != self.collection_version
        self.collection_version = version
        if persist and (added or removed or changed_version or (self.path is not None and not self.path.exists())):
            self.save()
        return SyncReport(added, removed, len(fetched))

    # -- search --------------------------------------------------------------------------------------

    def search(self, query: str, n: int) -> list[LexicalHit]:
        """The n best chunks by BM25 (only chunks sharing at least one word with the query)."""
        return self.query(tokenize(query), n).hits

    def query(self, words: Sequence[str], n: int) -> LexicalResult:
        """BM25 of every chunk for these words: the top n hits, the top-n score distribution, any chunk's score."""
        model = self._bm25()
        if model is None:
            return LexicalResult([], np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32), {})
        scores = model.scores(words)
        n = min(max(n, 0), len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if 0 < n < len(scores) else np.arange(n)
        top = top[np.lexsort((top, -scores[top]))]  # score descending, then index order
        hits = [
            LexicalHit(model.ids[i], float(scores[i]), rank)
            for rank, i in enumerate(top.tolist(), start=1)
            if scores[i] > 0
        ]
        return LexicalResult(hits, scores[top], scores, model.position)

    def idf(self, word: str) -> float:
        """How rare a word is in the indexed chunks (BM25's idf, never negative; an unseen word is rarest).

        The answer layer weighs a question's words by it: a shared 的 or 合作 says little, a shared place
        name or figure says much.
        """
        model = self._bm25()
        total = len(model.ids) if model else 0
        found = model.document_frequency(word) if model else 0
        return math.log(1.0 + (total - found + 0.5) / (found + 0.5))

    def prepare(self) -> None:
        """Load jieba's dictionary and build the BM25 matrices now (~1 s), not in the first search."""
        load_jieba()
        self._bm25()

    def _bm25(self) -> Bm25Matrix | None:
        model = self._model
        if model is None and self._tokens:
            with self._lock:
                if self._model is None:
                    self._model = self._cached_matrix() or self._built_matrix()
                model = self._model
        return model

    def _matrix_path(self) -> Path | None:
        return None if self.path is None or self.generation is None else self.path.with_suffix(".bm25.npz")

    def _cached_matrix(self) -> Bm25Matrix | None:
        path = self._matrix_path()
        if path is None or self.generation is None:
            return None
        return Bm25Matrix.load(path, self.generation, k1=self.k1, b=self.b)

    def _built_matrix(self) -> Bm25Matrix:
        """Build the matrix; when memory holds exactly the file's words, cache it for the next process."""
        model = Bm25Matrix.build(self._tokens, k1=self.k1, b=self.b)
        path = self._matrix_path()
        if path is not None and self.generation is not None:
            with contextlib.suppress(OSError):
                model.save(path, self.generation)
        return model


@dataclass(frozen=True)
class LexicalResult:
    """One query's BM25 scores over the whole index."""

    hits: list[LexicalHit]  # the top n chunks that share a word with the query, best first
    top_scores: npt.NDArray[np.float32]  # the n highest scores, zeros included: the distribution fusion uses
    _scores: npt.NDArray[np.float32]
    _position: Mapping[str, int]

    def score(self, chunk_id: str) -> float | None:
        """Any indexed chunk's score (0.0: no shared word); None for a chunk the index does not hold."""
        i = self._position.get(chunk_id)
        return None if i is None else float(self._scores[i])


def fetch_embed_texts(store: ChunkStore, identity: ModelIdentity, ids: Iterable[str]) -> dict[str, str]:
    """The embed texts (heading path + text) of the given chunk ids, read from the collection."""
    chunks, _ = store.get(identity, list(ids))
    return {chunk_id: chunk.embed_text for chunk_id, chunk in chunks.items()}
