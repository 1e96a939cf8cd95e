"""The index at scale: 10k or 100k chunks, embedded Chroma and a Chroma server.

    .venv/bin/python benchmarks/scale.py --chunks 100000 [--mode embedded|server|both] [--json]

The chunks are synthetic but built from the knowledge base: each one joins 3 to 8 sentences drawn
at random from knowledge/, so words, lengths and BM25 statistics are those of real text. Encoding
100k passages would take hours on two cores and is measured by `benchmarks/ingest.py`, so vectors
are made like this: a sample of chunks (`--encoded`, default 1,000) is encoded by the real model;
every other chunk gets the vector of a random sampled chunk plus Gaussian noise (sd 0.02 per
dimension, renormalised), so the HNSW graph sees clusters of near neighbours as real text makes.
Questions are dev questions from evals/qa/knowledge.jsonl, encoded once before timing: query
times exclude the question's encoding (the figure the goal is about), which is printed apart.

Measured per mode: write rate (Chroma + BM25, without encoding), query p50/p95 for dense, BM25 and
hybrid, the benchmark process's peak RSS, disk, BM25 load time, and warm start: a fresh process that
loads the model, opens the index and BM25 and answers one hybrid search (its peak RSS is what a
serving process needs). Goals at 100k: hybrid p95 < 150 ms, RSS < 3 GB,
warm start < 20 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from coopbot.config import offline

offline()

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"hybrid_p95_ms": 150.0, "rss_mb": 3072.0, "warm_start_s": 20.0}
NOISE = 0.02
BATCH = 2000

WARM_START = """
import json, sys, time
began = time.perf_counter()
from coopbot.config import Settings, offline
offline()
from coopbot.index.embedder import load_embedder
from coopbot.retrieval.retriever import Retriever
settings = Settings.model_validate_json(sys.argv[1])
retriever = Retriever(settings, embedder=load_embedder(settings))
retriever.index.lexical.prepare()
opened = time.perf_counter() - began
retriever.search(sys.argv[2], 5, mode="hybrid")
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"opened_s": opened, "first_search_s": time.perf_counter() - began, "rss_mb": int(peak) / 1024}))
"""


def knowledge_sentences() -> list[str]:
    from coopbot.ingest import loaders
    from coopbot.ingest.pipeline import discover
    from coopbot.text.sentences import split_sentences

    settings = _settings(Path(tempfile.gettempdir()))
    sources, _ = discover([ROOT / "knowledge"], settings)
    sentences = []
    for source in sources:
        text = loaders.load_document(source.path, source.doc_id).text
        sentences += [s for start, end in split_sentences(text) if len(s := text[start:end].strip()) >= 8]
    return sentences


def synthetic_chunks(count: int, sentences: list[str], rng: random.Random) -> list[tuple[str, str, str]]:
    """(id, title, text) of `count` chunks, each 3-8 random knowledge-base sentences."""
    return [
        (f"s{i:06d}", f"合成文档{i // 20}", "".join(rng.sample(sentences, rng.randint(3, 8)))) for i in range(count)
    ]


def vectors_for(
    chunks: list[tuple[str, str, str]], encoded: int, embedder: Any, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], float]:
    """Real vectors for the first `encoded` chunks, noisy copies of them for the rest; and passages/s."""
    began = time.perf_counter()
    sample = embedder.embed_passages([text for _, _, text in chunks[:encoded]])
    rate = encoded / (time.perf_counter() - began)
    picks = rng.integers(0, encoded, size=len(chunks) - encoded)
    rest = sample[picks] + rng.normal(0, NOISE, size=(len(picks), sample.shape[1])).astype(np.float32)
    rest /= np.linalg.norm(rest, axis=1, keepdims=True)
    return np.vstack([sample, rest]).astype(np.float32), rate


def _settings(data_dir: Path, **changes: Any) -> Any:
    from coopbot.config import Settings
    from coopbot.index.embedder import model_location

    project = Settings()
    return Settings(data_dir=data_dir, embedding_model=model_location(project), collection="scale", **changes)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_chroma(path: Path) -> tuple[subprocess.Popen[bytes], int]:
    import httpx

    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("chroma run did not start within 60 s")


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _disk_mb(*paths: Path) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return round(total / 2**20, 1)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def measure(
    mode: str, chunks: list[tuple[str, str, str]], vectors: Any, questions: list[str], embedder: Any
) -> dict[str, Any]:
    """Write the chunks into a fresh index of this mode, then time searches, a BM25 load and a warm start."""
    from coopbot.evals.retrieval import Passage, passage_chunk
    from coopbot.index.bm25 import LexicalIndex, index_path
    from coopbot.index.hybrid import HybridIndex
    from coopbot.retrieval.retriever import Retriever

    figures: dict[str, Any] = {"mode": mode, "chunks": len(chunks)}
    with tempfile.TemporaryDirectory(prefix=f"coopbot-scale-{mode}-") as tmp:
        chroma: subprocess.Popen[bytes] | None = None
        changes: dict[str, Any] = {}
        if mode == "server":
            chroma, port = _start_chroma(Path(tmp) / "chroma-server")
            changes = {"chroma_mode": "server", "chroma_port": port}
        settings = _settings(Path(tmp) / "data", **changes)
        try:
            index = HybridIndex(settings)
            began = time.perf_counter()
            with index.writing() as writes:
                for start in range(0, len(chunks), BATCH):
                    batch = [passage_chunk(Passage(i, t, x), "scale") for i, t, x in chunks[start : start + BATCH]]
                    writes.add(batch, vectors[start : start + len(batch)])
            figures["write_chunks_per_s"] = round(len(chunks) / (time.perf_counter() - began), 1)

            began = time.perf_counter()
            LexicalIndex.load(index_path(settings)).prepare()
            figures["bm25_load_s"] = round(time.perf_counter() - began, 2)

            retriever = Retriever(settings, index=index, embedder=embedder)
            for question in questions:  # encode once: the timed searches below hit the query cache
                embedder.embed_query(question)
            for mode_name in ("dense", "bm25", "hybrid"):
                retriever.search(questions[0], 5, mode=mode_name)  # warm
                samples = []
                for _ in range(3):
                    for question in questions:
                        began = time.perf_counter()
                        retriever.search(question, 8, mode=mode_name)
                        samples.append((time.perf_counter() - began) * 1000)
                figures[f"{mode_name}_ms"] = _percentiles(samples)
            figures["rss_mb"] = _peak_rss_mb()
            stores = [settings.data_dir] + ([Path(tmp) / "chroma-server"] if mode == "server" else [])
            figures["disk_mb"] = _disk_mb(*stores)

            done = subprocess.run(
                [sys.executable, "-c", WARM_START, settings.model_dump_json(), questions[0]],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            warm = json.loads(done.stdout.strip().splitlines()[-1])
            figures["warm_start_s"] = round(warm["first_search_s"], 2)
            figures["warm_start_rss_mb"] = round(warm["rss_mb"], 1)
        finally:
            if chroma is not None:
                chroma.terminate()
                chroma.wait(timeout=30)
    return figures


def main() -> None:
    from coopbot.evals.cases import load_qa_cases
    from coopbot.index.embedder import load_embedder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--encoded", type=int, default=1000, help="chunks encoded by the real model")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--mode", choices=("embedded", "server", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("chroma", path=str(Path(sys.executable).parent)) is None and args.mode != "embedded":
        raise SystemExit("server mode needs the `chroma` command next to this Python (chromadb installs it)")

    rng = random.Random(20261203)
    chunks = synthetic_chunks(args.chunks, knowledge_sentences(), rng)
    embedder = load_embedder(_settings(Path(tempfile.gettempdir())))
    vectors, rate = vectors_for(chunks, min(args.encoded, args.chunks), embedder, np.random.default_rng(7))
    cases = load_qa_cases(ROOT / "evals" / "qa" / "knowledge.jsonl")
    questions = [case.question for case in cases][: args.questions]
    embedder.embed_queries(["预热"])
    began = time.perf_counter()
    for question in questions:
        embedder.embed_queries([question])
    encode_ms = (time.perf_counter() - began) * 1000 / len(questions)

    modes = ("embedded", "server") if args.mode == "both" else (args.mode,)
    report = {
        "chunks": args.chunks,
        "encoded_passages_per_s": round(rate, 1),
        "question_encoding_ms": round(encode_ms, 1),
        "cpus": os.cpu_count(),
        "goals": GOALS,
        "modes": [measure(mode, chunks, vectors, questions, embedder) for mode in modes],
    }
    for figures in report["modes"]:
        figures["meets_goals"] = {
            "hybrid_p95_ms": figures["hybrid_ms"]["p95"] < GOALS["hybrid_p95_ms"],
            "rss_mb": figures["warm_start_rss_mb"] < GOALS["rss_mb"],
            "warm_start_s": figures["warm_start_s"] < GOALS["warm_start_s"],
        }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return
    print(
        f"{args.chunks} chunks; {report['encoded_passages_per_s']} passages/s encoded; "
        f"question encoding {report['question_encoding_ms']} ms (not in the query times)"
    )
    for figures in report["modes"]:
        print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
