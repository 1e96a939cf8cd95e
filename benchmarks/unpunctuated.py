"""Text without punctuation: how long reading and chunking take as it grows (issue 15's 1 MB probe).

    .venv/bin/python benchmarks/unpunctuated.py [--sizes 16,64,256,1024] [--timeout 120] [--source DIR] [--json]

Each size (KB of UTF-8 text without a sentence mark or line break after its heading: Chinese with no
space either, or words separated by spaces) is read
and chunked by `load_document` and `chunk_document` in a fresh process, killed after `--timeout` seconds.
Embedding is left out: it is linear in the number of chunks, and a chunk is at most chunk_size +
chunk_min_size characters (the security test uploads 1 MB through the real server, embedding included).

`--source` runs another checkout's code, for a before/after figure:

    git worktree add /tmp/before 7deb7ef^      # before the linear patterns and the chunk cap (issue 14)
    .venv/bin/python benchmarks/unpunctuated.py --source /tmp/before/src
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

ROOT = Path(__file__).resolve().parents[1]
KINDS = {  # what a line of the text repeats: Chinese with no mark at all, or words and spaces with no mark
    "han": "区域协同创新合作机制",  # 30 bytes
    "spaced": "regional cooperation ",  # 21 bytes
}
MEASURE = """
import sys, time
from pathlib import Path
from coopbot.ingest.chunking import chunk_document
from coopbot.ingest.loaders.load import load_document
path = Path(sys.argv[1])
began = time.perf_counter()
document = load_document(path, path.name)
chunks = chunk_document(document)
print(time.perf_counter() - began, len(chunks), max(len(c.text) for c in chunks))
"""


def measure(kb: int, kind: str, source: Path, timeout: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wall.txt"
        unit = KINDS[kind]
        path.write_text("# 无标点\n\n" + unit * (kb * 1024 // len(unit.encode())), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
        try:
            done = subprocess.run(
                [sys.executable, "-c", MEASURE, str(path)], env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"kb": kb, "kind": kind, "seconds": None, "note": f"killed after {timeout:g} s"}
    if done.returncode != 0:
        return {"kb": kb, "kind": kind, "seconds": None, "note": done.stderr.strip().splitlines()[-1]}
    seconds, chunks, longest = done.stdout.split()
    return {
        "kb": kb,
        "kind": kind,
        "seconds": round(float(seconds), 3),
        "chunks": int(chunks),
        "longest_chunk": int(longest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="16,64,256,1024", help="KB, comma-separated")
    parser.add_argument("--kinds", default="han,spaced", help=f"of {', '.join(KINDS)}")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--source", type=Path, default=ROOT / "src", help="the src/ folder whose code runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    began = time.perf_counter()
    sizes, kinds = [int(kb) for kb in args.sizes.split(",")], args.kinds.split(",")
    rows = [measure(kb, kind, args.source, args.timeout) for kind in kinds for kb in sizes]
    if args.json:
        print(json.dumps({"source": str(args.source), "rows": rows}, ensure_ascii=False, indent=1))
        return
    print(f"code: {args.source}")
    for row in rows:
        if row["seconds"] is None:
            print(f"  {row['kind']:>6} {row['kb']:>5} KB: {row['note']}")
        else:
            size, seconds, chunks, longest = row["kb"], row["seconds"], row["chunks"], row["longest_chunk"]
            print(f"  {row['kind']:>6} {size:>5} KB: {seconds:8.3f} s, {chunks} chunks, longest {longest}")
    print(f"({time.perf_counter() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
