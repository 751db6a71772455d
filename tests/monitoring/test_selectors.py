"""Selectors turn a source's aggregates into typed series: rates, revision changes, PSI per cell, ranking."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.monitoring import selectors
from apps.monitoring.drift import js_distance, psi
from apps.monitoring.sources.base import TelemetrySource
from apps.monitoring.types import WINDOWS, BaselineProfile, DriftCounts, FeatureProfile, LatencyBin, LatencyCounts
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db

T1, T2, T3 = (NOW - timedelta(minutes=m) for m in (3, 2, 1))


class FixedSource(TelemetrySource):
    name = "fixed"

    def __init__(self, latency=None, drift=None):
        self.latency, self.drift = latency, drift

    def latency_series(self, deployment, window, bin, *, end=None):
        return self.latency

    def drift_counts(self, deployment, window, bin, baseline, *, end=None):
        return self.drift

    def sampled_rows(self, deployment, *, start, end, model_version, limit):
        raise AssertionError("not read by the selectors")

    def request_totals(self, deployment, windows, *, slow_above_ms=None, end=None):
        raise AssertionError("not read by the selectors")

    def revision_windows(self, deployment, *, start, end, revisions):
        raise AssertionError("not read by the selectors")

    def agreement(self, deployment, *, stable, candidate, start, end):
        raise AssertionError("not read by the selectors")


def test_latency_rates_and_revision_changes(deployment):
    bins = [
        LatencyBin(T1, 120, 6, 12, 10.0, 20.0, 30.0, "r1"),
        LatencyBin(T2, 60, 0, 0, 11.0, 21.0, 31.0, "r1"),
        LatencyBin(T3, 30, 3, 0, 12.0, 22.0, 32.0, "r2"),
    ]
    series = selectors.latency_series_get(
        deployment=deployment, window=WINDOWS["1h"], end=NOW, source=FixedSource(latency=LatencyCounts(bins, ["w"]))
    )
    assert [p.rps for p in series.points] == [2.0, 1.0, 0.5]
    assert [p.error_rate for p in series.points] == [0.05, 0.0, 0.1]
    assert series.points[0].rejected_rate == 0.1
    assert series.revision_changes == [(T1, "r1"), (T3, "r2")]
    assert series.warnings == ["w"] and series.start == NOW - timedelta(hours=1)


def test_drift_cells_levels_and_ranking(deployment, settings):
    settings.MONITORING_MIN_ROWS = 100
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version="1",
        rows=1000,
        features=[
            FeatureProfile(name="steady", kind="numeric", edges=[0.0], frequencies=[0.5, 0.5]),
            FeatureProfile(name="moved", kind="numeric", edges=[0.0], frequencies=[0.5, 0.5]),
            FeatureProfile(name="rare", kind="categorical", categories=["a"], frequencies=[0.5, 0.5]),
            FeatureProfile(name="silent", kind="numeric", edges=[0.0], frequencies=[0.5, 0.5]),
        ],
    )
    counts = DriftCounts(
        counts={
            "steady": {T1: [50, 50], T2: [52, 48]},
            "moved": {T1: [50, 50], T2: [95, 5]},
            "rare": {T1: [10, 0]},
            "silent": {},
        }
    )
    series = selectors.drift_series_get(
        deployment=deployment, window=WINDOWS["1h"], baseline=baseline, end=NOW, source=FixedSource(drift=counts)
    )
    assert series.times == [T1, T2]
    assert [f.name for f in series.features] == ["moved", "steady", "rare", "silent"]
    moved = series.features[0]
    assert moved.cells[1].psi == pytest.approx(psi([0.5, 0.5], [95, 5]))
    assert moved.cells[1].js == pytest.approx(js_distance([0.5, 0.5], [95, 5]))
    assert moved.psi == pytest.approx(psi([0.5, 0.5], [145, 55])) and moved.level == "warn"
    assert series.features[1].level == "ok"
    assert series.features[2].level == "few rows" and series.features[2].chi2_p is not None
    assert series.features[3].level == "no data" and series.features[3].rows == 0
