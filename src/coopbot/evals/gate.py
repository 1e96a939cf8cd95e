"""The regression gate: floors (and, for lower-is-better metrics, ceilings) read from a TOML file.

    [qa.overall]
    "hit@5" = 0.9
    false_refusal_rate = 0.2          # a ceiling: lower is better

    [qa.by_kind.unanswerable]
    refusal_accuracy = 0.9

    [retrieval.drcd-dev.hybrid]       # dataset folder name, then retriever
    "recall@5" = 0.97

Floors are set a little under what the suite measures today and only ever raised. A metric named in
the file but missing from the run (a kind that has no cases any more, a dataset not evaluated) fails
the gate too: a gate that silently checks nothing is no gate.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coopbot.evals.qa import LOWER_IS_BETTER


class ThresholdsError(ValueError):
    """The thresholds file cannot be read; the message says where."""


@dataclass(frozen=True)
class Breach:
    """One metric on the wrong side of its threshold (or absent from the run)."""

    name: str  # dotted path, e.g. qa.by_kind.unanswerable.refusal_accuracy
    value: float | None
    limit: float
    ceiling: bool
    note: str = ""  # a breach of the file itself rather than of one metric

    def __str__(self) -> str:
        if self.note:
            return f"{self.name}: {self.note}"
        if self.value is None:
            return f"{self.name}: not measured in this run (threshold {self.limit})"
        side = "above its ceiling" if self.ceiling else "below its floor"
        return f"{self.name} = {self.value:.4f} is {side} {self.limit}"


def load_thresholds(path: Path) -> dict[str, Any]:
    """Parse the TOML file; numbers only at the leaves."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ThresholdsError(f"thresholds file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{path}: not valid TOML ({exc})") from exc
    for name, limit in _leaves(data):
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise ThresholdsError(f"{path}: {name} must be a number, got {limit!r}")
    return data


def _leaves(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        found += _leaves(value, name) if isinstance(value, dict) else [(name, value)]
    return found


def _lookup(measured: dict[str, Any], path: list[str]) -> float | None:
    node: Any = measured
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def check(thresholds: dict[str, Any], section: str, measured: dict[str, Any]) -> list[Breach]:
    """Every threshold under `section` ("qa", "blind", "retrieval", "answerability") that `measured` breaks.

    `measured` mirrors the thresholds' shape below the section: for a QA suite the `--json` summary, for
    "retrieval" {dataset: {retriever: metrics}} and for "answerability" {dataset: metrics}, where only
    the datasets of this run are gated. A file
    with no threshold for the run is a breach of its own: the gate must check something.
    """
    breaches = []
    leaves = _leaves(thresholds.get(section, {}))
    if section in ("retrieval", "answerability"):  # a run covers some datasets: gate those, and insist on at least one
        leaves = [(name, limit) for name, limit in leaves if name.split(".")[0] in measured]
    if not leaves:
        return [Breach(section, None, 0.0, False, note="no threshold applies to this run")]
    for name, limit in leaves:
        path = name.split(".")
        if path[-1] == "p50" or path[-1] == "p95":
            raise ThresholdsError(f"{section}.{name}: latency is not gated (shared machines are noisy)")
        value = _lookup(measured, path)
        ceiling = path[-1] in LOWER_IS_BETTER
        if value is None or (value > limit if ceiling else value < limit):
            breaches.append(Breach(f"{section}.{name}", value, float(limit), ceiling))
    return breaches
