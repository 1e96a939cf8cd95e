"""Ingest speed: cold index of knowledge/, warm (unchanged) re-run, and pure encoding of the same chunks.

    .venv/bin/python benchmarks/ingest.py [--knowledge DIR] [--json]
    .venv/bin/python benchmarks/ingest.py --encoders torch,onnx,onnx-int8 [--rounds 3] [--json]

The pipeline's overhead over the model's own encoding is printed as a ratio (target: <= 1.15),
and the warm re-run both in-process and as a fresh `coopbot ingest` process (target: < 3 s).
The model is loaded before timing, and its load time is printed on its own line.

`--encoders` compares encoders (`COOPBOT_ENCODER`; `name:N` also sets N threads) side by side: each run in
its own process (a fresh memory high-water mark, no warm caches carried over), interleaved round after round
so that a busy machine slows them all alike; the medians (and best round) are printed, with the peak RSS.
The ONNX encoders need `coopbot model prepare` to have exported the model in the data dir.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coopbot.config import offline
from interleave import interleaved_runs

offline()

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from coopbot.config import Settings
    from coopbot.index.embedder import load_embedder, model_identity, model_location
    from coopbot.ingest import chunking, loaders
    from coopbot.ingest.pipeline import discover, ingest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--encoders", help="compare encoders, e.g. torch,onnx,onnx-int8 or torch:2 (N threads)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of --encoders (default 3)")
    args = parser.parse_args()
    if args.encoders:
        compare_encoders(args.encoders.split(","), args.rounds, args.knowledge, args.json)
        return

    base = Settings()  # the project's data dir holds the prepared model
    model = model_location(base)
    with tempfile.TemporaryDirectory(prefix="coopbot-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), knowledge_dir=args.knowledge, embedding_model=model)
        begin = time.perf_counter()
        embedder = load_embedder(settings)
        model_identity(settings)  # hashing the model's files: once per data dir, not part of ingesting
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
        "encoder": settings.index.encoder,
        "encoder_threads": settings.index.encoder_threads,
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
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"encoder                       {figures['encoder']} ({figures['encoder_threads'] or 'default'} threads)")
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
    print(f"peak RSS                      {figures['peak_rss_mb']} MB")


COMPARED = {
    "cold_chunks_per_second": "cold ingest chunks/s",
    "pure_encode_chunks_per_second": "pure encoding chunks/s",
    "model_load_seconds": "model load s",
    "peak_rss_mb": "peak RSS MB",
}


def compare_encoders(variants: list[str], rounds: int, knowledge: Path, as_json: bool) -> None:
    """Each variant in its own process, interleaved over `rounds`; medians, best round, speed-up over the first."""
    runs = interleaved_runs(variants, rounds, __file__, ["--knowledge", str(knowledge)])
    figures = {variant: {key: [r[key] for r in results] for key in COMPARED} for variant, results in runs.items()}
    chunks = runs[variants[0]][0]["chunks"]
    if as_json:
        medians = {v: {key: statistics.median(values) for key, values in f.items()} for v, f in figures.items()}
        print(json.dumps({"rounds": rounds, "chunks": chunks, "median": medians, "runs": figures}, indent=2))
        return
    print(f"{rounds} interleaved rounds, {chunks} chunks; median (each round); cold ingest speed-up over {variants[0]}")
    base = statistics.median(figures[variants[0]]["cold_chunks_per_second"])
    for variant, values in figures.items():
        speedup = statistics.median(values["cold_chunks_per_second"]) / base
        cells = [
            f"{label} {statistics.median(values[key]):g} ({', '.join(f'{v:g}' for v in values[key])})"
            for key, label in COMPARED.items()
        ]
        print(f"{variant:12} {speedup:4.2f}x  " + "; ".join(cells))


if __name__ == "__main__":
    main()
