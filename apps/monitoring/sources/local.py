"""The embedded default: aggregates computed from the JSONL telemetry files the local target writes
(``TELEMETRY_DIR / "<environment>--<deployment>.jsonl"``).

A file is read once: its lines become columns (``TelemetryTable``) kept per file, and each later request
reads only the bytes appended since (the remembered offset), so a week's window of a big file costs a few
numpy operations, not a re-parse. A file that shrank or was replaced (another inode) is read again from the
start.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from apps.monitoring.agreement import outputs_agree
from apps.monitoring.drift import feature_bins
from apps.monitoring.sources.base import SampledRows, TelemetrySource, TelemetryUnavailableError, window_bounds
from apps.monitoring.sources.local_table import TelemetryTable
from apps.monitoring.types import (
    Agreement,
    BaselineProfile,
    DriftCounts,
    LatencyBin,
    LatencyCounts,
    RequestTotals,
    RevisionLatency,
    RevisionWindow,
)

__all__ = ["LocalTelemetrySource", "nearest_rank"]


def nearest_rank(sorted_values: np.ndarray, q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    n = len(sorted_values)
    rank = max(1, math.ceil(q / 100 * n))
    return float(sorted_values[rank - 1])


def _grouped_percentiles(groups: np.ndarray, size: int, ascending: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per group 0..size-1: the count, and the nearest-rank p50/p95/p99 of ``ascending`` (values already sorted
    ascending; ``groups[i]`` is the group of value i). A stable sort by group keeps each group ascending."""
    narrow = groups.astype(np.uint16) if size <= 2**16 else groups  # NumPy radix-sorts 16-bit keys: O(n)
    values = ascending[np.argsort(narrow, kind="stable")]
    counts = np.bincount(groups, minlength=size)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    percentiles = {}
    for q in (50, 95, 99):
        rank = np.maximum(1, np.ceil(q / 100 * counts).astype(np.int64))
        percentiles[q] = values[np.minimum(first + rank - 1, max(len(values) - 1, 0))] if len(values) else counts
    return counts, percentiles


class LocalTelemetrySource(TelemetrySource):
    name = "local"

    def __init__(self, *, telemetry_dir: Path | str | None = None) -> None:
        self._telemetry_dir = Path(telemetry_dir) if telemetry_dir else None
        self._tables: dict[Path, TelemetryTable] = {}
        self._lock = threading.Lock()

    @property
    def telemetry_dir(self) -> Path:
        from django.conf import settings

        return self._telemetry_dir or Path(settings.TELEMETRY_DIR)

    def path(self, deployment) -> Path:
        return self.telemetry_dir / f"{deployment.environment.name}--{deployment.name}.jsonl"

    def table(self, deployment) -> TelemetryTable | None:
        """Every line of the deployment's file as columns, brought up to date with what was appended since the
        last call; None when there is no file yet."""
        path = self.path(deployment)
        with self._lock:
            table = self._tables.get(path)
            try:
                self._tables[path] = table = TelemetryTable.refresh(path, table)
            except FileNotFoundError:
                self._tables.pop(path, None)
                return None
            except OSError as exc:
                raise TelemetryUnavailableError(
                    f"Cannot read the telemetry file {path.name}: {exc.strerror}."
                ) from None
            return table

    @staticmethod
    def _warnings(table: TelemetryTable, path: Path) -> list[str]:
        return [f"{table.bad} unreadable line(s) in {path.name} were skipped."] if table.bad else []

    def latency_series(self, deployment, window: timedelta, bin: timedelta, *, end=None) -> LatencyCounts:
        start, end = window_bounds(window, bin, end)
        table = self.table(deployment)
        if table is None:
            return LatencyCounts(bins=[])
        columns = table.requests()
        times, order = columns["time"], columns["by_latency"]
        inside = (times >= start.timestamp()) & (times < end.timestamp())
        lines = order[inside[order]]  # the window's lines, in ascending latency
        if not len(lines):
            return LatencyCounts(bins=[], warnings=self._warnings(table, self.path(deployment)))
        step = bin.total_seconds()
        first_key = int(start.timestamp() // step)
        keys = np.floor(times[lines] / step).astype(np.int64) - first_key
        latency, status, revision = columns["latency"][lines], columns["status"][lines], columns["revision"][lines]
        names = columns["revision_names"]
        size = int(keys.max()) + 1 if len(keys) else 0
        counts, pct = _grouped_percentiles(keys, size, latency)
        errors = np.bincount(keys[status >= 500], minlength=size)
        rejected = np.bincount(keys[(status >= 400) & (status < 500)], minlength=size)
        per_revision = np.bincount(keys * len(names) + revision, minlength=size * len(names)).reshape(size, -1)
        bins = []
        for key in np.flatnonzero(counts).tolist():
            busiest = np.flatnonzero(per_revision[key] == per_revision[key].max())
            bins.append(
                LatencyBin(
                    start=datetime.fromtimestamp((first_key + key) * step, UTC),
                    requests=int(counts[key]),
                    errors=int(errors[key]),
                    rejected=int(rejected[key]),
                    p50=float(pct[50][key]),
                    p95=float(pct[95][key]),
                    p99=float(pct[99][key]),
                    revision=min(str(names[i]) for i in busiest),  # the first by name on a tie
                    revisions=tuple(sorted(str(names[i]) for i in np.flatnonzero(per_revision[key]))),
                )
            )
        compared = self._revisions(revision, names, latency, status)
        return LatencyCounts(bins=bins, warnings=self._warnings(table, self.path(deployment)), revisions=compared)

    def request_totals(self, deployment, windows, *, slow_above_ms=None, end=None) -> list[RequestTotals]:
        end = end or datetime.now(UTC)
        table = self.table(deployment)
        longest = max(windows) if windows else None
        if table is None:
            return [RequestTotals(window=w, requests=0, errors=0, slow=0) for w in windows]
        columns = table.requests()
        times, latency, status = columns["time"], columns["latency"], columns["status"]
        before_end = times < end.timestamp()
        totals = []
        for window in windows:
            inside = before_end & (times >= (end - window).timestamp())
            slow = int(np.count_nonzero(inside & (latency > slow_above_ms))) if slow_above_ms is not None else 0
            p99 = None
            if window == longest and inside.any():
                p99 = nearest_rank(np.sort(latency[inside]), 99)
            totals.append(
                RequestTotals(
                    window=window,
                    requests=int(np.count_nonzero(inside)),
                    errors=int(np.count_nonzero(inside & (status >= 500))),
                    slow=slow,
                    p99=p99,
                )
            )
        return totals

    @staticmethod
    def _revisions(revision: np.ndarray, names: np.ndarray, ascending: np.ndarray, status: np.ndarray) -> list:
        counts, pct = _grouped_percentiles(revision, len(names), ascending)
        errors = np.bincount(revision[status >= 500], minlength=len(names))
        return [
            RevisionLatency(
                revision=str(names[code]),
                requests=int(counts[code]),
                errors=int(errors[code]),
                p50=float(pct[50][code]),
                p95=float(pct[95][code]),
                p99=float(pct[99][code]),
            )
            for code in sorted(np.flatnonzero(counts).tolist(), key=lambda c: str(names[c]))
        ]

    def revision_windows(self, deployment, *, start, end, revisions) -> dict[str, RevisionWindow]:
        windows = {name: RevisionWindow(name, requests=0, errors=0, shadow=0, p50=None, p99=None) for name in revisions}
        table = self.table(deployment)
        if table is None:
            return windows
        columns = table.requests()
        times, order = columns["time"], columns["by_latency"]
        inside = (times >= start.timestamp()) & (times < end.timestamp())
        for code, name in enumerate(columns["revision_names"].tolist()):
            if name not in windows:
                continue
            lines = order[(inside & (columns["revision"] == code))[order]]  # in ascending latency
            if not len(lines):
                continue
            latency = columns["latency"][lines]
            windows[name] = RevisionWindow(
                revision=name,
                requests=len(lines),
                errors=int(np.count_nonzero(columns["status"][lines] >= 500)),
                shadow=int(np.count_nonzero(columns["shadow"][lines])),
                p50=nearest_rank(latency, 50),
                p99=nearest_rank(latency, 99),
            )
        return windows

    def agreement(self, deployment, *, stable, candidate, start, end) -> Agreement:
        table = self.table(deployment)
        if table is None:
            return Agreement(compared=0, equal=0)
        lines = table.sampled_lines(start=start, end=end)
        answered = np.fromiter((isinstance(o, list) and len(o) > 0 for o in lines["outputs"]), bool, len(lines["time"]))
        ours = _earliest_outputs(lines, answered & (lines["revision"] == stable) & ~lines["shadow"])
        theirs = _earliest_outputs(lines, answered & (lines["revision"] == candidate) & lines["shadow"])
        compared = equal = 0
        largest: float | None = None
        for request_id in ours.keys() & theirs.keys():
            same, difference = outputs_agree(ours[request_id], theirs[request_id])
            compared += 1
            equal += same
            if difference is not None and (largest is None or difference > largest):
                largest = difference
        return Agreement(compared=compared, equal=equal, max_abs_difference=largest)

    def drift_counts(
        self, deployment, window, bin, baseline: BaselineProfile, *, end=None, revision=None
    ) -> DriftCounts:
        start, end = window_bounds(window, bin, end)
        counts: dict[str, dict[datetime, list[int]]] = {f.name: {} for f in baseline.features}
        table = self.table(deployment)
        if table is None:
            return DriftCounts(counts=counts)
        rows = table.sampled_rows(start=start, end=end, model_version=str(baseline.model_version), revision=revision)
        step = bin.total_seconds()
        keys = np.floor(rows.times / step).astype(np.int64)
        unique, key_index = np.unique(keys, return_inverse=True)
        starts = [datetime.fromtimestamp(k * step, UTC) for k in unique.tolist()]
        for feature in baseline.features:
            if feature.name in rows.inputs.columns:
                counts[feature.name] = _count_by_time(feature, rows.inputs[feature.name], key_index, starts)
        prediction = _count_by_time(baseline.prediction, rows.outputs, key_index, starts) if baseline.prediction else {}
        return DriftCounts(counts=counts, warnings=self._warnings(table, self.path(deployment)), prediction=prediction)

    def sampled_rows(self, deployment, *, start, end, model_version: str, limit: int) -> SampledRows:
        table = self.table(deployment)
        if table is None:
            return SampledRows(times=np.empty(0), inputs=pd.DataFrame(), outputs=pd.Series([], dtype=object))
        rows = table.sampled_rows(start=start, end=end, model_version=str(model_version))
        if len(rows) <= limit:
            return rows
        keep = np.sort(np.random.default_rng(0).choice(len(rows), size=limit, replace=False))
        return SampledRows(
            times=rows.times[keep],
            inputs=rows.inputs.iloc[keep].reset_index(drop=True),
            outputs=rows.outputs.iloc[keep].reset_index(drop=True),
        )


def _earliest_outputs(lines: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, list]:
    """request id -> the outputs of its earliest line among ``keep`` (a retried request id counts once)."""
    index = np.flatnonzero(keep)
    first: dict[str, list] = {}
    for i in index[np.argsort(lines["time"][index], kind="stable")].tolist():
        first.setdefault(lines["request_id"][i], lines["outputs"][i])
    return first


def _count_by_time(feature, values: pd.Series, key_index: np.ndarray, starts: list[datetime]) -> dict:
    """time bin start -> counts per baseline bin, for the time bins where at least one value counted."""
    size = len(feature.frequencies)
    bins = feature_bins(feature, values)
    valid = bins >= 0
    grid = np.bincount(key_index[valid] * size + bins[valid], minlength=len(starts) * size).reshape(-1, size)
    return {starts[i]: grid[i].tolist() for i in np.flatnonzero(grid.sum(axis=1)).tolist()}
