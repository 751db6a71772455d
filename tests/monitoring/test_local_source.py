"""The local source aggregates a real JSONL file exactly as docs/telemetry.md describes it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.sources.local import LocalTelemetrySource
from apps.monitoring.types import BaselineProfile, FeatureProfile
from tests.telemetry import NOW, line, write_lines

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def test_latency_percentiles_counts_and_revisions_per_bin(telemetry_dir, deployment):
    path = telemetry_dir / "dev--credit-default.jsonl"
    first = NOW - timedelta(minutes=10)  # bin 02:50
    second = NOW - timedelta(minutes=5)  # bin 02:55
    lines = [line(first + timedelta(seconds=i * 0.5), latency_ms=float(i), revision="r1") for i in range(1, 101)]
    # second bin: 20 requests, 3 server errors, 2 refused, mostly r2 after a roll-out
    for i in range(20):
        status = 500 if i < 3 else 400 if i < 5 else 200
        extra = {"error": "boom"} if status >= 400 else {}
        lines.append(
            line(
                second + timedelta(seconds=i),
                latency_ms=100.0 + i,
                status=status,
                revision="r1" if i < 4 else "r2",
                **extra,
            )
        )
    lines.append("not json")
    lines.append('{"type": "something else", "time": "2026-11-27T02:55:00.000Z"}')
    lines.append(line(NOW - timedelta(hours=2), latency_ms=9999.0))  # outside the window
    lines.append(line(NOW + timedelta(seconds=1), latency_ms=9999.0))  # after the end
    write_lines(path, lines)

    counts = get_telemetry_source().latency_series(deployment, timedelta(hours=1), MINUTE, end=NOW)

    assert [b.start for b in counts.bins] == [first, second]
    a, b = counts.bins
    assert (a.requests, a.errors, a.rejected, a.p50, a.p95, a.p99, a.revision) == (100, 0, 0, 50.0, 95.0, 99.0, "r1")
    # 100..119: nearest rank of 50% of 20 is the 10th value, 95% the 19th, 99% the 20th
    assert (b.requests, b.errors, b.rejected, b.p50, b.p95, b.p99, b.revision) == (20, 3, 2, 109.0, 118.0, 119.0, "r2")
    assert counts.warnings == ["1 unreadable line(s) in dev--credit-default.jsonl were skipped."]
    r1, r2 = (
        counts.revisions
    )  # over the window: r1 is 1..100 and 100..103 (nearest rank 103 of 104 is 102), r2 104..119
    assert (r1.revision, r1.requests, r1.errors, r1.p50, r1.p99) == ("r1", 104, 3, 52.0, 102.0)
    assert (r2.revision, r2.requests, r2.errors, r2.p50, r2.p95, r2.p99) == ("r2", 16, 0, 111.0, 119.0, 119.0)


def test_missing_file_is_no_data(telemetry_dir, deployment):
    counts = LocalTelemetrySource(telemetry_dir=telemetry_dir).latency_series(deployment, timedelta(hours=1), MINUTE)
    assert counts.bins == [] and counts.warnings == []


def test_drift_counts_per_baseline_bin(telemetry_dir, deployment):
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version="1",
        rows=100,
        features=[
            FeatureProfile(name="age", kind="numeric", edges=[30.0, 40.0], frequencies=[0.3, 0.4, 0.3]),
            FeatureProfile(name="sex", kind="categorical", categories=["female", "male"], frequencies=[0.5, 0.4, 0.1]),
        ],
    )
    when = NOW - timedelta(minutes=3)
    rows = [
        {"age": 25, "sex": "female"},
        {"age": 30, "sex": "male"},  # 30 is the first edge: the middle bin
        {"age": 39.9, "sex": "other"},
        {"age": 40, "sex": None},
        {"age": None, "sex": "female"},
    ]
    write_lines(
        telemetry_dir / "dev--credit-default.jsonl",
        [
            line(when, sampled=True, inputs=rows, outputs=[0] * 5),
            line(when, sampled=False),
            line(when, sampled=True, model_version="2", inputs=[{"age": 99, "sex": "male"}]),  # other version
        ],
    )
    counts = get_telemetry_source().drift_counts(deployment, timedelta(hours=1), MINUTE, baseline, end=NOW)
    assert counts.counts == {"age": {when: [1, 2, 1]}, "sex": {when: [2, 1, 1]}}
