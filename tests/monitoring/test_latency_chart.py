"""The latency chart: refused requests (4xx) apart from server errors (5xx), one hue per series, whole-number
error ticks, gaps where nobody scored anything, zoomed to the data, and revision marks that never hide each
other."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.monitoring import charts, selectors
from apps.monitoring.types import WINDOWS, LatencyBin, LatencyCounts, window_get
from tests.monitoring.test_selectors import T1, T2, FixedSource
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db


def _figure(deployment, bins, window="1h"):
    series = selectors.latency_series_get(
        deployment=deployment, window=WINDOWS[window], end=NOW, source=FixedSource(latency=LatencyCounts(bins))
    )
    return series, charts.latency_figure(series)


def _bin(minutes_ago, *, requests=100, errors=0, rejected=0, revision="r1", revisions=()):
    when = NOW - timedelta(minutes=minutes_ago)
    return LatencyBin(when, requests, errors, rejected, 10.0, 20.0, 30.0, revision, revisions)


def test_rejected_requests_have_their_own_line(deployment):
    bins = [LatencyBin(T1, 100, 0, 4, 10.0, 20.0, 30.0, "r1"), LatencyBin(T2, 50, 1, 0, 11.0, 21.0, 31.0, "r1")]
    _, figure = _figure(deployment, bins)
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert traces["rejected % (4xx)"]["y"] == [4.0, 0.0]
    assert traces["errors % (5xx)"]["y"] == [0.0, 2.0]


def test_every_series_has_its_own_colour(deployment):
    _, figure = _figure(deployment, [_bin(3), _bin(2)])
    colours = [t.get("line", {}).get("color") or t["marker"]["color"] for t in figure["data"]]
    assert len(colours) == len(set(colours)) == 6  # p50, p95, p99, requests/s, errors, rejected


def test_minutes_without_traffic_are_gaps(deployment):
    _, figure = _figure(deployment, [_bin(10), _bin(9), _bin(4), _bin(3)])
    p50 = next(t for t in figure["data"] if t["name"] == "p50")
    assert p50["y"] == [10.0, 10.0, None, 10.0, 10.0]  # the line breaks between 9 and 4 minutes ago
    assert p50["x"][2] == (NOW - timedelta(minutes=8)).isoformat()
    assert not p50.get("connectgaps")


@pytest.mark.parametrize(
    ("errors", "ticks"),
    [(0, (5, 1)), (3, (5, 1)), (9, (15, 5)), (40, (50, 10)), (100, (100, 20))],
)
def test_the_error_axis_has_whole_ticks(deployment, errors, ticks):
    _, figure = _figure(deployment, [_bin(2, errors=errors), _bin(1)])
    axis = figure["layout"]["yaxis3"]
    assert (axis["range"][1], axis["dtick"]) == ticks and axis["tick0"] == 0 and axis["tickmode"] == "linear"
    quiet = [a for a in figure["layout"]["annotations"] if a.get("name") == "no-errors"]
    assert bool(quiet) == (errors == 0)


def test_the_x_axis_zooms_to_the_data(deployment):
    series, figure = _figure(deployment, [_bin(5), _bin(4)])  # the last 5 minutes of the hour
    assert figure["layout"]["xaxis"]["range"] == [(NOW - timedelta(minutes=7)).isoformat(), series.end.isoformat()]
    series, figure = _figure(deployment, [_bin(50), _bin(4)])  # traffic all over the hour: the whole hour
    assert figure["layout"]["xaxis"]["range"][0] == series.start.isoformat()


def test_shorter_windows_are_offered():
    assert list(WINDOWS)[:2] == ["15m", "1h"] and WINDOWS["15m"].bin_label == "15 s"
    assert window_get("6h").bin == timedelta(minutes=5)


def test_revisions_in_the_same_minute_are_both_marked(deployment):
    bins = [_bin(6), _bin(5, revision="r3", revisions=("r2", "r3")), _bin(4, revision="r3")]
    series, figure = _figure(deployment, bins)
    assert [name for _, name in series.revision_changes] == ["r1", "r2", "r3"]
    labels = [a["text"] for a in figure["layout"]["annotations"] if a.get("name") == "revision"]
    assert labels == ["r1", "r2 → r3"]  # r2 and r3 in the same minute: one mark naming both
    series, figure = _figure(deployment, [_bin(50), _bin(30, revision="r2"), _bin(4, revision="r3")])
    labels = [a["text"] for a in figure["layout"]["annotations"] if a.get("name") == "revision"]
    assert labels == ["r1", "r2", "r3"]
