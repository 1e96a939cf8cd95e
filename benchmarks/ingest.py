"""Ingest speed: cold index of knowledge/, warm (unchanged) re-run, and pure encoding of the same chunks.

    .venv/bin/python benchmarks/ingest.py [--knowledge DIR] [--json]

The pipeline's overhead over the model's own encoding is printed as a ratio (target: <= 1.15),
and the warm re-run both in-process and as a fresh `coopbot ingest` process (target: < 3 s).
The model is loaded before timing, and its load time is printed on its own line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coopbot.config import offline

offline()

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from coopbot.config import Settings
    from coopbot.index.embedder import load_embedder, model_location
    from coopbot.ingest import chunking, loaders
    from coopbot.ingest.pipeline import discover, ingest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    base = Settings()  # the project's data dir holds the prepared model
    model = model_location(base)
    with tempfile.TemporaryDirectory(prefix="coopbot-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), knowledge_dir=args.knowledge, embedding_model=model)
        begin = time.perf_counter()
        embedder = load_embedder(settings)
        embedder.embed_passages(["预热"])
        load_seconds = time.perf_counter() - begin

        cold = ingest(settings, embedder=embedder)
        begin = time.perf_counter()
        warm = ingest(settings, embedder=embedder)
        warm_seconds = time.perf_counter() - begin
        assert warm.chunks_added == 0, "a warm re-run embedded chunks"

        env = dict(os.environ, COOPBOT_DATA_DIR=tmp, COOPBOT_KNOWLEDGE_DIR=str(args.knowledge))
        env["COOPBOT_EMBEDDING_MODEL"] = model
        begin = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "coopbot"), "ingest", "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        warm_process_seconds = time.perf_counter() - begin

        sources, _ = discover([args.knowledge], settings)
        texts = []
        for source in sources:
            document = loaders.load_document(source.path, source.doc_id)
            chunks = chunking.chunk_document(
                document,
                size=settings.index.chunk_size,
                min_size=settings.index.chunk_min_size,
                overlap=settings.index.chunk_overlap,
            )
            texts += [c.embed_text for c in chunks]
        begin = time.perf_counter()
        embedder.embed_passages(texts)
        encode_seconds = time.perf_counter() - begin

    figures = {
        "files": cold.files_indexed,
        "chunks": cold.chunks_added,
        "model_load_seconds": round(load_seconds, 2),
        "cold_seconds": round(cold.seconds, 2),
        "cold_encode_seconds": round(cold.embed_seconds, 2),
        "cold_chunks_per_second": round(cold.chunks_added / cold.seconds, 2),
        "pure_encode_seconds": round(encode_seconds, 2),
        "pure_encode_chunks_per_second": round(len(texts) / encode_seconds, 2),
        "pipeline_over_encode_ratio": round(cold.seconds / encode_seconds, 3),
        "warm_rerun_seconds_in_process": round(warm_seconds, 3),
        "warm_rerun_seconds_fresh_process": round(warm_process_seconds, 2),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"files                         {figures['files']}")
    print(f"chunks                        {figures['chunks']}")
    print(f"model load                    {figures['model_load_seconds']} s (not in the figures below)")
    print(f"cold ingest                   {figures['cold_seconds']} s, {figures['cold_chunks_per_second']} chunks/s")
    print(f"  of which encoding           {figures['cold_encode_seconds']} s")
    print(
        f"pure encoding, same chunks    {figures['pure_encode_seconds']} s, "
        f"{figures['pure_encode_chunks_per_second']} chunks/s"
    )
    print(f"pipeline / pure encoding      {figures['pipeline_over_encode_ratio']}x (target <= 1.15)")
    print(f"warm re-run, in process       {figures['warm_rerun_seconds_in_process']} s")
    print(f"warm re-run, `coopbot ingest` {figures['warm_rerun_seconds_fresh_process']} s (target < 3 s)")


if __name__ == "__main__":
    main()
