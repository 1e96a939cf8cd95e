"""Retrieval quality and speed on the evaluation sets: BM25, dense and hybrid side by side.

    .venv/bin/python benchmarks/retrieval.py [--datasets DIR] [--set FIELD=VALUE ...] [--json]

Every set folder under DIR (default: ../shared/datasets, read in place: the DuReader licence forbids
copying it into the project) is indexed into a temporary Chroma collection and lexical index, one
passage per chunk (see `coopbot.evals.retrieval`). Passage vectors come from the embedding cache in the
project's data dir (`.coopbot/cache/embeddings`), so only the first run pays for encoding; queries
are always encoded for real, so latencies are those of a real search (warm: model loaded).

Prints R@1, R@5, R@10, MRR@10 and latency p50/p95 per retriever and set, then the acceptance targets:
on every set hybrid R@5 within 0.01 of the best single retriever; hybrid's mean R@5 above both single
retrievers' means; DRCD hybrid R@5 >= 0.97; hybrid p50 latency < 60 ms.
`--set dedup_jaccard=1` (etc.) overrides a setting for the run, to measure its effect.

`--encoders torch,onnx,onnx-int8` (`name:N` also sets N threads) runs the whole benchmark once per encoder, each
in its own process, interleaved over `--rounds`, and prints them side by side: R@1 and R@5 of dense and hybrid
per set, hybrid p50 latency (the question's encoding included) and peak RSS. Recall does not vary between
rounds; latency does, so the median round is printed. ONNX encoders need `coopbot model prepare` first.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from coopbot.config import offline
from interleave import interleaved_runs

if TYPE_CHECKING:
    from coopbot.config import Settings
    from coopbot.evals.retrieval import SetResult

offline()

ROOT = Path(__file__).resolve().parents[1]

TOLERANCE = 0.01
DRCD_FLOOR = 0.97
P50_LIMIT_MS = 60.0


def _overrides(pairs: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def main() -> None:
    from coopbot.config import Settings
    from coopbot.evals.retrieval import eval_settings, evaluate_set, find_eval_sets, load_eval_set
    from coopbot.index.embedder import cached_embedder, load_embedder, model_location
    from coopbot.retrieval.retriever import MODES

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--encoders", help="compare encoders, e.g. torch,onnx,onnx-int8 or onnx-int8:2 (N threads)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of --encoders (default 1)")
    args = parser.parse_args()
    if args.encoders:
        child_args = ["--datasets", str(args.datasets), *(f"--set={pair}" for pair in args.overrides)]
        compare_encoders(args.encoders.split(","), args.rounds, child_args, args.json)
        return

    project = Settings()  # the project's data dir: prepared model and embedding cache
    base = project.replace(embedding_model=model_location(project), **_overrides(args.overrides))
    folders = find_eval_sets(args.datasets)
    if not folders:
        sys.exit(f"no evaluation sets (folders with corpus.jsonl) under {args.datasets}")
    begin = time.perf_counter()
    passage_embedder = cached_embedder(base)
    query_embedder = load_embedder(base)
    load_seconds = time.perf_counter() - begin

    results: list[SetResult] = []
    with tempfile.TemporaryDirectory(prefix="coopbot-retrieval-") as tmp:
        for folder in folders:
            eval_set = load_eval_set(folder)
            settings = eval_settings(base, Path(tmp), eval_set.name)
            print(f"[{eval_set.name}] indexing {len(eval_set.passages)} passages ...", file=sys.stderr, flush=True)
            result = evaluate_set(
                settings,
                eval_set,
                modes=MODES,
                passage_embedder=passage_embedder,
                query_embedder=query_embedder,
                progress=lambda done, total: print(f"  embedded {done}/{total}", file=sys.stderr, flush=True),
            )
            results.append(result)

    figures = _figures(results, base, load_seconds)
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False))
    else:
        _print(results, figures)


def _figures(sets: list[SetResult], base: Settings, load_seconds: float) -> dict[str, object]:
    from coopbot.evals.retrieval import retrieval_summary
    from coopbot.retrieval.retriever import MODES

    per_set = {}
    for r in sets:
        per_set[r.name] = {
            "passages": r.passages,
            "queries": r.scores["hybrid"].queries,
            "index_seconds": round(r.index_seconds, 1),
            "cache_hits": r.cache_hits,
            "cache_misses": r.cache_misses,
            **retrieval_summary(r, "hybrid")["retrievers"],  # the same figures as `coopbot eval retrieval --json`
        }
    mean_r5 = {mode: statistics.fmean(r.scores[mode].recall(5) for r in sets) for mode in MODES}
    all_hybrid = [t for r in sets for t in r.scores["hybrid"].seconds]
    hybrid_p50 = statistics.median(all_hybrid) * 1000
    targets = {
        f"hybrid R@5 within {TOLERANCE} of the best single retriever on every set": all(
            r.scores["hybrid"].recall(5) >= r.best_single(5) - TOLERANCE - 1e-9 for r in sets
        ),
        "hybrid mean R@5 above both single retrievers' means": mean_r5["hybrid"]
        > max(mean_r5["bm25"], mean_r5["dense"]),
        f"DRCD hybrid R@5 >= {DRCD_FLOOR}": all(
            r.scores["hybrid"].recall(5) >= DRCD_FLOOR for r in sets if r.name.lower().startswith("drcd")
        )
        and any(r.name.lower().startswith("drcd") for r in sets),
        f"hybrid p50 latency < {P50_LIMIT_MS:.0f} ms": hybrid_p50 < P50_LIMIT_MS,
    }
    return {
        "settings": {
            "retrieval_candidates": base.retrieval.candidates,
            "fusion_lexical_weight": base.retrieval.fusion_lexical_weight,
            "bm25_k1": base.index.bm25_k1,
            "bm25_b": base.index.bm25_b,
            "dedup_jaccard": base.retrieval.dedup_jaccard,
        },
        "encoder": base.index.encoder,
        "model_load_seconds": round(load_seconds, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "sets": per_set,
        "mean_R@5": {mode: round(v, 4) for mode, v in mean_r5.items()},
        "hybrid_p50_ms_all_sets": round(hybrid_p50, 1),
        "targets": targets,
    }


def _print(sets: list[SetResult], figures: dict[str, object]) -> None:
    print(f"settings: {json.dumps(figures['settings'])}")
    print(f"model load {figures['model_load_seconds']} s (not in the latencies)")
    header = f"{'set':16} {'retriever':9} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'p50 ms':>7} {'p95 ms':>7}"
    print(header)
    print("-" * len(header))
    for r in sets:
        for mode, s in r.scores.items():
            print(
                f"{r.name:16} {mode:9} {s.recall(1):6.3f} {s.recall(5):6.3f} {s.recall(10):6.3f} {s.mrr(10):7.3f} "
                f"{s.latency_ms(0.5):7.1f} {s.latency_ms(0.95):7.1f}"
            )
        print(
            f"{'':16} ({r.passages} passages, {r.scores['hybrid'].queries} queries; indexed in {r.index_seconds:.1f} s,"
            f" {r.cache_hits} vectors from the cache, {r.cache_misses} encoded)"
        )
    print()
    for r in sets:
        h = r.scores["hybrid"]
        print(
            f"summary {r.name}: hybrid R@5 {h.recall(5):.3f} (bm25 {r.scores['bm25'].recall(5):.3f}, "
            f"dense {r.scores['dense'].recall(5):.3f}, best single {r.best_single(5):.3f}); "
            f"hybrid R@1 {h.recall(1):.3f}, MRR@10 {h.mrr(10):.3f}, p50 {h.latency_ms(0.5):.1f} ms"
        )
    mean_r5 = figures["mean_R@5"]
    assert isinstance(mean_r5, dict)
    print("mean R@5: " + ", ".join(f"{mode} {value:.4f}" for mode, value in mean_r5.items()))
    print(f"hybrid p50 latency over all sets: {figures['hybrid_p50_ms_all_sets']} ms")
    targets = figures["targets"]
    assert isinstance(targets, dict)
    for name, met in targets.items():
        print(f"target {'MET   ' if met else 'MISSED'} {name}")


def compare_encoders(variants: list[str], rounds: int, child_args: list[str], as_json: bool) -> None:
    """The benchmark once per variant and round, each in its own process, interleaved; a side-by-side table."""
    runs = interleaved_runs(variants, rounds, __file__, child_args)
    if as_json:
        print(json.dumps(runs, indent=2, ensure_ascii=False))
        return
    header = f"{'set':16} {'encoder':14} {'dense R@1':>9} {'R@5':>6} {'hybrid R@1':>10} {'R@5':>6} {'p50 ms':>7}"
    print(header)
    print("-" * len(header))
    for name in runs[variants[0]][0]["sets"]:
        for variant in variants:
            first = runs[variant][0]["sets"][name]
            p50 = statistics.median(r["sets"][name]["hybrid"]["latency_ms"]["p50"] for r in runs[variant])
            dense, hybrid = first["dense"], first["hybrid"]
            print(
                f"{name:16} {variant:14} {dense['recall@1']:9.3f} {dense['recall@5']:6.3f} "
                f"{hybrid['recall@1']:10.3f} {hybrid['recall@5']:6.3f} {p50:7.1f}"
            )
    print()
    for variant in variants:
        p50s = [r["hybrid_p50_ms_all_sets"] for r in runs[variant]]
        rss = [r["peak_rss_mb"] for r in runs[variant]]
        print(
            f"{variant:14} hybrid p50 over all sets {statistics.median(p50s)} ms {p50s}, "
            f"peak RSS {statistics.median(rss)} MB {rss}, mean R@5 {runs[variant][0]['mean_R@5']}"
        )


if __name__ == "__main__":
    main()
