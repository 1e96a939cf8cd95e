"""Run a benchmark once per encoder variant and round, each in a process of its own, interleaved.

A variant is `encoder[:threads]` (e.g. `torch:2`, `onnx-int8`). Interleaving spreads a busy machine's noise over
every variant alike; a process per run keeps one variant's threads, caches and memory out of the next one's figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def interleaved_runs(variants: list[str], rounds: int, script: str, args: list[str]) -> dict[str, list[dict[str, Any]]]:
    """`python script *args --json` per variant and round, with COOPBOT_ENCODER[_THREADS] set; its JSON per run."""
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for round_number in range(1, rounds + 1):
        for variant in variants:
            encoder, _, threads = variant.partition(":")
            env = dict(os.environ, COOPBOT_ENCODER=encoder, COOPBOT_ENCODER_THREADS=threads or "0")
            print(f"round {round_number}/{rounds}: {variant} ...", file=sys.stderr, flush=True)
            command = [sys.executable, script, *args, "--json"]
            child = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
            runs[variant].append(json.loads(child.stdout))
    return runs
