"""The local source reads a telemetry file once and then only what was appended (its remembered offset); a file
that was replaced or truncated is read again from the start, and a half-written last line waits."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from apps.monitoring.sources.local import LocalTelemetrySource
from tests.telemetry import NOW, line, write_lines

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def _requests(source, deployment) -> int:
    return sum(b.requests for b in source.latency_series(deployment, HOUR, MINUTE, end=NOW).bins)


def test_appended_lines_are_read_from_the_remembered_offset(telemetry_dir, deployment):
    path = telemetry_dir / "dev--credit-default.jsonl"
    write_lines(path, [line(NOW - timedelta(minutes=5), latency_ms=float(i)) for i in range(10)])
    source = LocalTelemetrySource(telemetry_dir=telemetry_dir)
    assert _requests(source, deployment) == 10
    table = source.table(deployment)
    assert table.offset == path.stat().st_size and len(table.chunks) == 1

    write_lines(path, [line(NOW - timedelta(minutes=4), latency_ms=99.0) for _ in range(5)])
    assert _requests(source, deployment) == 15
    assert len(table.chunks) == 2 and len(table.chunks[1].time) == 5  # only the new lines were parsed
    assert source.table(deployment) is table and table.offset == path.stat().st_size

    assert _requests(source, deployment) == 15 and len(table.chunks) == 2  # nothing new: nothing parsed


def test_a_half_written_line_waits_for_its_newline(telemetry_dir, deployment):
    path = telemetry_dir / "dev--credit-default.jsonl"
    whole = line(NOW - timedelta(minutes=2))
    write_lines(path, [whole])
    with path.open("a") as handle:
        handle.write(whole[:20])
    source = LocalTelemetrySource(telemetry_dir=telemetry_dir)
    assert _requests(source, deployment) == 1
    with path.open("a") as handle:
        handle.write(whole[20:] + "\n")
    assert _requests(source, deployment) == 2 and source.table(deployment).bad == 0


def test_a_replaced_or_truncated_file_is_read_again(telemetry_dir, deployment):
    path = telemetry_dir / "dev--credit-default.jsonl"
    write_lines(path, [line(NOW - timedelta(minutes=3)) for _ in range(8)])
    source = LocalTelemetrySource(telemetry_dir=telemetry_dir)
    assert _requests(source, deployment) == 8
    rotated = telemetry_dir / "new.jsonl"
    write_lines(rotated, [line(NOW - timedelta(minutes=3)) for _ in range(3)])
    os.replace(rotated, path)  # a new inode
    assert _requests(source, deployment) == 3
    path.write_text(line(NOW - timedelta(minutes=3)) + "\n")  # truncated in place, shorter than the offset
    assert _requests(source, deployment) == 1
    path.unlink()
    assert _requests(source, deployment) == 0


def test_many_small_appends_are_compacted_into_one_chunk(telemetry_dir, deployment):
    path = telemetry_dir / "dev--credit-default.jsonl"
    source = LocalTelemetrySource(telemetry_dir=telemetry_dir)
    for i in range(20):
        write_lines(path, [line(NOW - timedelta(minutes=10) + timedelta(seconds=i), latency_ms=float(i))])
        assert _requests(source, deployment) == i + 1
    table = source.table(deployment)
    assert len(table.chunks) <= 16 and sum(len(c.time) for c in table.chunks) == 20
    (only,) = source.latency_series(deployment, HOUR, MINUTE, end=NOW).bins
    assert (only.requests, only.p50, only.p99) == (20, 9.0, 19.0)


def test_a_file_without_lines_in_the_window_is_no_data(telemetry_dir, deployment):
    write_lines(telemetry_dir / "dev--credit-default.jsonl", [line(NOW - timedelta(hours=3))])
    counts = LocalTelemetrySource(telemetry_dir=telemetry_dir).latency_series(deployment, HOUR, MINUTE, end=NOW)
    assert counts.bins == [] and counts.revisions == [] and counts.warnings == []
