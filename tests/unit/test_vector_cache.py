"""The on-disk vector cache stays bounded: the oldest vectors go when the cap is passed, the newest stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coopbot.index.embedder import CachedEmbedder

from ..fakes.embedder import FakeSentenceModel, fake_settings


def test_the_cache_keeps_at_most_its_cap_dropping_the_oldest(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path).replace(vector_cache_rows=1_000)
    cache = CachedEmbedder(FakeSentenceModel(), settings, tmp_path / "cache.sqlite")  # type: ignore[arg-type]
    first = [f"第{n}个问题" for n in range(600)]
    later = [f"第{n}个问题" for n in range(600, 1_200)]
    cache.embed_queries(first)
    cache.embed_queries(later)
    rows = cache._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    assert rows == 900  # past the cap: down to 90 % of it, oldest first
    cache.misses = cache.hits = 0
    again = cache.embed_queries(later)  # the newest are all still there
    assert cache.hits == len(later) and cache.misses == 0
    cache.embed_queries(first[:10])  # the oldest were dropped: computed again, identically
    assert cache.misses == 10
    assert np.allclose(again, FakeSentenceModel().encode([settings.index.query_prefix + t for t in later]))
    cache.close()
    reopened = CachedEmbedder(FakeSentenceModel(), settings, tmp_path / "cache.sqlite")  # type: ignore[arg-type]
    assert reopened._rows == rows + 10  # the count survives a restart
    reopened.close()
