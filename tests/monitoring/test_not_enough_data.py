"""Drift that does not cry wolf: a feature (or a cell) with fewer sampled rows than ``MONITORING_MIN_ROWS`` is
drawn grey as "not enough data", labelled with its row count and the minimum, and never ranked by its PSI."""

from __future__ import annotations

import pytest

from apps.monitoring import charts, selectors
from apps.monitoring.types import WINDOWS, BaselineProfile, DriftCounts, FeatureProfile
from tests.monitoring.test_selectors import T1, T2, FixedSource
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db


def _profile(name):
    return FeatureProfile(name=name, kind="numeric", edges=[0.0], frequencies=[0.5, 0.5])


def _series(deployment, counts):
    baseline = BaselineProfile(
        model_name="credit-default", model_version="1", rows=1000, features=[_profile(n) for n in counts]
    )
    return selectors.drift_series_get(
        deployment=deployment,
        window=WINDOWS["1h"],
        baseline=baseline,
        end=NOW,
        source=FixedSource(drift=DriftCounts(counts=counts)),
    )


def test_few_rows_are_grey_labelled_and_not_ranked(deployment, settings):
    settings.MONITORING_MIN_ROWS = 100
    series = _series(
        deployment,
        {
            "b_wild": {T1: [10, 0]},  # 10 rows all in one bin: PSI ~ 3.7, but noise
            "a_mild": {T1: [6, 4]},  # 10 rows, PSI small
            "judged": {T1: [60, 50], T2: [40, 30]},  # 180 rows; T2's 70 rows are too few for the cell itself
        },
    )
    # only the judged feature is ranked; the unjudged follow by name, whatever their PSI
    assert [f.name for f in series.features] == ["judged", "a_mild", "b_wild"]
    assert [f.judged for f in series.features] == [True, False, False]
    assert series.features[2].psi > series.features[1].psi  # b_wild's PSI is higher, yet it is not first

    figure = charts.drift_heatmap_figure(series)
    psi_trace, grey_trace = figure["data"]
    assert grey_trace["name"] == "not enough data" and grey_trace["showscale"] is False
    rows = dict(zip(psi_trace["y"], range(len(psi_trace["y"])), strict=True))
    assert "b_wild (10/100 rows)" in rows and "a_mild (10/100 rows)" in rows and "judged" in rows
    wild, judged = rows["b_wild (10/100 rows)"], rows["judged"]
    assert psi_trace["z"][wild] == [None, None]  # no PSI colour at all for 10 rows ...
    assert grey_trace["z"][wild] == [1, None]  # ... but grey where there were rows
    assert "10 of 100 sampled rows" in grey_trace["text"][wild][0]
    assert psi_trace["z"][judged][0] == pytest.approx(series.features[0].cells[0].psi)  # 110 rows: coloured
    assert psi_trace["z"][judged][1] is None and grey_trace["z"][judged][1] == 1  # 70 rows: grey


def test_enough_rows_everywhere_draws_no_grey_trace(deployment, settings):
    settings.MONITORING_MIN_ROWS = 10
    series = _series(deployment, {"x": {T1: [60, 50]}})
    figure = charts.drift_heatmap_figure(series)
    assert len(figure["data"]) == 1 and figure["data"][0]["y"] == ["x"]
