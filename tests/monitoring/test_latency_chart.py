"""The latency chart draws refused requests (4xx, bad input) apart from server errors (5xx)."""

from __future__ import annotations

import pytest

from apps.monitoring import charts, selectors
from apps.monitoring.types import WINDOWS, LatencyBin, LatencyCounts
from tests.monitoring.test_selectors import T1, T2, FixedSource
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db


def test_rejected_requests_have_their_own_line(deployment):
    bins = [LatencyBin(T1, 100, 0, 4, 10.0, 20.0, 30.0, "r1"), LatencyBin(T2, 50, 1, 0, 11.0, 21.0, 31.0, "r1")]
    series = selectors.latency_series_get(
        deployment=deployment, window=WINDOWS["1h"], end=NOW, source=FixedSource(latency=LatencyCounts(bins))
    )
    figure = charts.latency_figure(series)
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert traces["rejected % (4xx)"]["y"] == [4.0, 0.0]
    assert traces["errors %"]["y"] == [0.0, 2.0]
    assert traces["rejected % (4xx)"]["line"]["color"] != traces["errors %"]["line"]["color"]
