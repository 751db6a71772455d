"""Which way a metric is better (apps/registry/metrics.py): from its name, or from the model's tags."""

from __future__ import annotations

import math

import pytest

from apps.registry.metrics import MetricDirections, best_of, metric_direction, metric_verdict

LOWER_BY_NAME = [
    "log_loss",
    "loss",
    "val_loss",
    "valLoss",
    "rmse",
    "test_rmse",
    "mse",
    "mae",
    "mape",
    "training_mean_absolute_error",
    "training_root_mean_squared_error",
    "error_rate",
    "brier_score",
    "false_positive_rate",
    "cross_entropy",
    "p95_latency_ms",
]
HIGHER_BY_NAME = ["accuracy", "roc_auc", "f1", "r2", "precision", "recall", "training_score", "neg_mean_squared_error"]


@pytest.mark.parametrize("name", LOWER_BY_NAME)
def test_losses_and_errors_are_better_lower(name):
    assert metric_direction(name) == "lower"


@pytest.mark.parametrize("name", HIGHER_BY_NAME)
def test_other_metrics_are_better_higher(name):
    assert metric_direction(name) == "higher"


def test_the_models_tags_win_over_the_name():
    directions = MetricDirections.of_model(
        {"modelplane.lower_is_better": " coverage_gap ,accuracy", "modelplane.higher_is_better": "error_reduction"}
    )
    assert [directions(n) for n in ("coverage_gap", "accuracy", "error_reduction", "rmse", "f1")] == [
        "lower",
        "lower",
        "higher",
        "lower",
        "higher",
    ]


def test_a_verdict_follows_the_direction():
    assert metric_verdict(0.40, 0.45, "lower") == "better"  # log_loss going down
    assert metric_verdict(0.40, 0.45, "higher") == "worse"
    assert metric_verdict(0.9, 0.9, "higher") == "same"
    assert metric_verdict(None, 0.9, "higher") is None and metric_verdict(math.nan, 0.9, "lower") is None


def test_the_best_value_depends_on_the_direction_and_keeps_ties():
    values = {"1": 0.5, "2": 0.3, "3": 0.3, "4": None}
    assert best_of(values, "lower") == {"2", "3"}
    assert best_of(values, "higher") == {"1"}
    assert best_of({"1": None}, "higher") == set()
