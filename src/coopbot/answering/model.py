"""Fitted logistic models: the answer-sentence scorer and the answerability gate read theirs from one file.

The weights are fitted on external data (`benchmarks/answerability.py`, on `../shared/datasets/drcd-test`),
never on our own eval cases, and stored with their provenance in `data/answerability.json`. Refit them
when the embedding model, the tokenizer or a feature changes; the file says how they were made.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FITTED_FILE = "answerability.json"
STRICT_FILE = "answerability-strict.json"  # `answer.gate = "strict"`: refuses more near misses, more answerable too
GateChoice = Literal["balanced", "strict"]


class ModelFileError(RuntimeError):
    """The fitted-weights file is missing or does not match the features the code computes."""


@dataclass(frozen=True)
class LogisticModel:
    """P(label) = sigmoid(intercept + sum_i coefficient_i * (x_i - mean_i) / scale_i)."""

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    threshold: float = 0.5  # the decision point chosen when fitting (see `provenance`)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def probability(self, values: Mapping[str, float]) -> float:
        """The model's probability for one example; every feature must be given."""
        missing = [name for name in self.features if name not in values]
        if missing:
            raise ModelFileError(f"features {missing} were not computed: the fitted model expects {self.features}")
        z = self.intercept + sum(
            c * (values[n] - m) / s
            for n, c, m, s in zip(self.features, self.coefficients, self.means, self.scales, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def probabilities(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities for a matrix whose columns are `features`, in order."""
        z = self.intercept + ((rows - np.asarray(self.means)) / np.asarray(self.scales)) @ np.asarray(self.coefficients)
        probabilities: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return probabilities

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "coefficients": [round(c, 6) for c in self.coefficients],
            "intercept": round(self.intercept, 6),
            "means": [round(m, 6) for m in self.means],
            "scales": [round(s, 6) for s in self.scales],
            "threshold": round(self.threshold, 6),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticModel:
        try:
            model = cls(
                tuple(str(f) for f in data["features"]),
                tuple(float(c) for c in data["coefficients"]),
                float(data["intercept"]),
                tuple(float(m) for m in data["means"]),
                tuple(float(s) for s in data["scales"]),
                float(data.get("threshold", 0.5)),
                dict(data.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"a fitted model lacks or garbles a field ({exc})") from exc
        if not len(model.features) == len(model.coefficients) == len(model.means) == len(model.scales):
            raise ModelFileError("a fitted model's features, coefficients, means and scales differ in length")
        return model


def fit_logistic(
    rows: npt.NDArray[np.float64], labels: npt.NDArray[np.float64], features: Sequence[str], *, l2: float = 1.0
) -> LogisticModel:
    """L2-regularised logistic regression on standardised features (Newton's method; a few iterations).

    Standardising makes the coefficients comparable (they are what the provenance reports) and the
    penalty fair across features of different units.
    """
    rows = np.asarray(rows, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    means = rows.mean(axis=0)
    scales = rows.std(axis=0)
    scales[scales < 1e-9] = 1.0
    x = np.hstack([np.ones((len(rows), 1)), (rows - means) / scales])
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        gradient = x.T @ (p - labels) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(
        tuple(features), tuple(float(c) for c in w[1:]), float(w[0]), tuple(means.tolist()), tuple(scales.tolist())
    )


@functools.cache
def fitted_models(gate: GateChoice = "balanced") -> dict[str, LogisticModel]:
    """The packaged fitted models by name ("sentence", "answerability").

    `gate="strict"` swaps in the answerability model of STRICT_FILE (fitted with near misses as negatives and
    the named-things features); the sentence model is the same for both."""
    models = _read(FITTED_FILE)
    if gate == "strict":
        models["answerability"] = _read(STRICT_FILE)["answerability"]
    return models


def _read(name: str) -> dict[str, LogisticModel]:
    try:
        data = json.loads(resources.files("coopbot").joinpath("data", name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(
            f"coopbot/data/{name} is missing or unreadable ({exc}): reinstall coopbot, or refit it with "
            "python benchmarks/answerability.py --write (see its docstring)"
        ) from exc
    return {model_name: LogisticModel.from_dict(model) for model_name, model in data["models"].items()}
