"""Which way is better for a run metric: the one rule every page and the API colour metrics by.

A metric is better **lower** when its name says it is a loss or an error (``log_loss``, ``val_loss``, ``rmse``,
``mean_absolute_error``, ``mape``, ``brier_score``, ``false_positive_rate``, ...) and better **higher** otherwise
(``accuracy``, ``roc_auc``, ``f1``, ``r2``; also sklearn's negated scorers such as ``neg_mean_squared_error``).
A registered model can say otherwise with two tags, each a comma-separated list of metric names:

    modelplane.lower_is_better  = latency_ms,calibration_gap
    modelplane.higher_is_better = error_reduction

The tags win over the name; a name in both tags is taken as lower-is-better.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "LOWER",
    "HIGHER",
    "LOWER_IS_BETTER_TAG",
    "HIGHER_IS_BETTER_TAG",
    "MetricDirections",
    "metric_direction",
    "metric_verdict",
    "best_of",
]

LOWER = "lower"
HIGHER = "higher"
LOWER_IS_BETTER_TAG = "modelplane.lower_is_better"
HIGHER_IS_BETTER_TAG = "modelplane.higher_is_better"

# Words that make a metric better lower wherever they stand in its name (split on _ - . / space and camelCase).
_LOWER_WORDS = frozenset(
    {
        "loss",
        "logloss",
        "error",
        "errors",
        "err",
        "rmse",
        "mse",
        "mae",
        "mape",
        "smape",
        "wape",
        "mdape",
        "rmsle",
        "msle",
        "medae",
        "brier",
        "deviance",
        "perplexity",
        "crossentropy",
        "wer",
        "cer",
        "fpr",
        "fnr",
        "fdr",
        "latency",
        "hamming",
        "regret",
        "distance",
        "divergence",
    }
)
_LOWER_PHRASES = ("false_positive", "false_negative", "false_discovery", "cross_entropy", "miss_rate", "fall_out")
_NEGATED = ("neg",)  # sklearn's scorers negate losses so that higher is better: neg_mean_squared_error
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _words(name: str) -> list[str]:
    return [w.lower() for part in re.split(r"[\s_\-./:]+", name) for w in _WORD.findall(part)]


def _names(tags: Mapping[str, str], key: str) -> set[str]:
    return {n.strip() for n in tags.get(key, "").split(",") if n.strip()}


@dataclass(frozen=True)
class MetricDirections:
    """The direction of each metric of one model: the model's tags first, then the name."""

    lower: frozenset[str] = frozenset()
    higher: frozenset[str] = frozenset()

    @classmethod
    def of_model(cls, tags: Mapping[str, str] | None) -> MetricDirections:
        tags = tags or {}
        return cls(frozenset(_names(tags, LOWER_IS_BETTER_TAG)), frozenset(_names(tags, HIGHER_IS_BETTER_TAG)))

    def __call__(self, name: str) -> str:
        if name in self.lower:
            return LOWER
        if name in self.higher:
            return HIGHER
        return metric_direction(name)


def metric_direction(name: str) -> str:
    """``"lower"`` or ``"higher"``: which way ``name`` is better, from its name alone."""
    words = _words(name)
    if words and words[0] in _NEGATED:
        return HIGHER
    joined = "_".join(words)
    if any(w in _LOWER_WORDS for w in words) or any(p in joined for p in _LOWER_PHRASES):
        return LOWER
    return HIGHER


def metric_verdict(candidate: float | None, baseline: float | None, direction: str) -> str | None:
    """``"better"``, ``"worse"`` or ``"same"`` for a change from ``baseline`` to ``candidate``; None when one
    side is missing."""
    if candidate is None or baseline is None or math.isnan(candidate) or math.isnan(baseline):
        return None
    if candidate == baseline:
        return "same"
    improved = candidate < baseline if direction == LOWER else candidate > baseline
    return "better" if improved else "worse"


def best_of(values: Mapping[str, float | None], direction: str) -> set[str]:
    """The keys holding the best value (all of them when tied); empty when no value is known."""
    known = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not known:
        return set()
    best = min(known.values()) if direction == LOWER else max(known.values())
    return {k for k, v in known.items() if v == best}
