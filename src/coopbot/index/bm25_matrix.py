"""The BM25 score matrix of a set of chunks (bm25s, sparse, Lucene's variant), and its cache on disk.

Building the matrix costs about half a minute at 100k chunks on two busy cores, and every process
that opens the index needs it: so the process that saves the words also saves the matrix next to
them, tagged with the words file's generation, and a starting server loads it instead of building.
A matrix whose generation, k1 or b differ is never used.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class Bm25Matrix:
    """Word x chunk BM25 scores over a fixed set of chunks, scored without a Python loop over chunks."""

    def __init__(self, ids: list[str], vocab: dict[str, int], scores: dict[str, Any] | None, *, k1: float, b: float):
        self.ids = ids  # sorted: the file's order, whatever order updates came in, so ties rank alike everywhere
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.vocab = vocab
        self.k1, self.b = k1, b
        self._scores = scores  # bm25s's CSC arrays; None when no chunk has a word (nothing scores)
        indptr = scores["indptr"] if scores is not None else np.zeros(len(vocab) + 1, dtype=np.int64)
        self._frequency = np.diff(indptr)  # a word's column holds one entry per chunk that has it
        self._model = None
        if scores is not None:
            import bm25s  # type: ignore[import-untyped]

            self._model = bm25s.BM25(k1=k1, b=b, method="lucene")
            self._model.scores = scores
            self._model.vocab_dict = vocab
            self._model.nonoccurrence_array = None  # what indexing sets for Lucene's variant

    @classmethod
    def build(cls, tokens: Mapping[str, list[str]], *, k1: float, b: float) -> Bm25Matrix:
        import bm25s

        ids = sorted(tokens)
        words = dict.fromkeys(itertools.chain.from_iterable(tokens[chunk_id] for chunk_id in ids))
        words.pop("", None)
        vocab = {"": 0} | {word: i for i, word in enumerate(words, start=1)}  # bm25s wants a non-empty vocabulary
        corpus = [list(map(vocab.__getitem__, tokens[chunk_id])) for chunk_id in ids]
        scores = None
        if any(corpus):  # no word anywhere (a damaged file): bm25s would divide by zero
            model = bm25s.BM25(k1=k1, b=b, method="lucene")
            scores = model.build_index_from_ids(list(vocab.values()), corpus, show_progress=False)
        return cls(ids, vocab, scores, k1=k1, b=b)

    def document_frequency(self, word: str) -> int:
        """How many chunks hold `word`."""
        i = self.vocab.get(word)
        return 0 if i is None else int(self._frequency[i])

    def scores(self, words: Sequence[str]) -> npt.NDArray[np.float32]:
        ids = [self.vocab[w] for w in words if w and w in self.vocab]
        if not ids or self._model is None:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    # -- the cache on disk -----------------------------------------------------------------------------

    def save(self, path: Path, generation: str) -> None:
        """Write atomically (temp file + rename), tagged with the generation of the words it was built from."""
        arrays: dict[str, Any] = {
            "generation": np.array(generation),
            "k1_b": np.array([self.k1, self.b]),
            "ids": np.array(self.ids, dtype=str),
            "vocab": np.array(list(self.vocab), dtype=str),
        }
        if self._scores is not None:
            arrays |= {name: self._scores[name] for name in ("data", "indices", "indptr")}
            arrays["num_docs"] = np.array(self._scores["num_docs"])
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp.npz")
        try:
            np.savez(temp, **arrays)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, generation: str, *, k1: float, b: float) -> Bm25Matrix | None:
        """The cached matrix if it was built from words of this generation with these k1 and b, else None."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["generation"]) != generation or stored["k1_b"].tolist() != [k1, b]:
                    return None
                ids = stored["ids"].tolist()
                vocab = {word: i for i, word in enumerate(stored["vocab"].tolist())}
                scores = None
                if "data" in stored:
                    scores = {name: stored[name] for name in ("data", "indices", "indptr")}
                    scores["num_docs"] = int(stored["num_docs"])
        except (OSError, ValueError, KeyError):
            return None
        return cls(ids, vocab, scores, k1=k1, b=b)
