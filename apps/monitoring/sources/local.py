"""The embedded default: aggregates computed from the JSONL telemetry files the local target writes
(``TELEMETRY_DIR / "<environment>--<deployment>.jsonl"``)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from apps.monitoring.sources.base import TelemetrySource, TelemetryUnavailableError, window_bounds
from apps.monitoring.types import BaselineProfile, DriftCounts, LatencyBin, LatencyCounts, RevisionLatency

__all__ = ["LocalTelemetrySource", "nearest_rank", "bin_index"]


def nearest_rank(sorted_values: np.ndarray, q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    n = len(sorted_values)
    rank = max(1, math.ceil(q / 100 * n))
    return float(sorted_values[rank - 1])


def bin_index(feature, value) -> int | None:
    """The baseline bin a value falls in, or None for a missing or unreadable value."""
    if value is None:
        return None
    if feature.kind == "categorical":
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            return feature.categories.index(text)
        except ValueError:
            return len(feature.categories)
    if isinstance(value, bool):
        value = float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return int(np.searchsorted(feature.edges, number, side="right"))


class LocalTelemetrySource(TelemetrySource):
    name = "local"

    def __init__(self, *, telemetry_dir: Path | str | None = None) -> None:
        self._telemetry_dir = Path(telemetry_dir) if telemetry_dir else None

    @property
    def telemetry_dir(self) -> Path:
        from django.conf import settings

        return self._telemetry_dir or Path(settings.TELEMETRY_DIR)

    def path(self, deployment) -> Path:
        return self.telemetry_dir / f"{deployment.environment.name}--{deployment.name}.jsonl"

    def _lines(self, deployment, start: datetime, end: datetime, warnings: list[str]) -> Iterator[dict]:
        path = self.path(deployment)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise TelemetryUnavailableError(f"Cannot read the telemetry file {path.name}: {exc.strerror}.") from None
        bad = 0
        with handle:
            for raw in handle:
                try:
                    line = json.loads(raw)
                    if line.get("type") != "scoring_request":
                        continue
                    when = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
                except (ValueError, KeyError, TypeError, AttributeError):
                    bad += 1
                    continue
                if start <= when < end:
                    line["_time"] = when
                    yield line
        if bad:
            warnings.append(f"{bad} unreadable line(s) in {path.name} were skipped.")

    @staticmethod
    def _bin_start(when: datetime, step: float) -> datetime:
        return datetime.fromtimestamp((when.timestamp() // step) * step, UTC)

    def latency_series(self, deployment, window: timedelta, bin: timedelta, *, end=None) -> LatencyCounts:
        start, end = window_bounds(window, bin, end)
        step = bin.total_seconds()
        warnings: list[str] = []
        latencies: dict[datetime, list[float]] = defaultdict(list)
        errors: Counter = Counter()
        rejected: Counter = Counter()
        revisions: dict[datetime, Counter] = defaultdict(Counter)
        per_revision: dict[str, list[float]] = defaultdict(list)
        revision_errors: Counter = Counter()
        for line in self._lines(deployment, start, end, warnings):
            key = self._bin_start(line["_time"], step)
            latencies[key].append(float(line.get("latency_ms") or 0.0))
            status = int(line.get("status") or 0)
            errors[key] += status >= 500
            rejected[key] += 400 <= status < 500
            revisions[key][str(line.get("revision", ""))] += 1
            per_revision[str(line.get("revision", ""))].append(float(line.get("latency_ms") or 0.0))
            revision_errors[str(line.get("revision", ""))] += status >= 500
        bins = []
        for key in sorted(latencies):
            values = np.sort(np.asarray(latencies[key], dtype=float))
            bins.append(
                LatencyBin(
                    start=key,
                    requests=len(values),
                    errors=errors[key],
                    rejected=rejected[key],
                    p50=nearest_rank(values, 50),
                    p95=nearest_rank(values, 95),
                    p99=nearest_rank(values, 99),
                    revision=revisions[key].most_common(1)[0][0],
                )
            )
        compared = []
        for revision in sorted(per_revision):
            values = np.sort(np.asarray(per_revision[revision], dtype=float))
            compared.append(
                RevisionLatency(
                    revision=revision,
                    requests=len(values),
                    errors=revision_errors[revision],
                    p50=nearest_rank(values, 50),
                    p95=nearest_rank(values, 95),
                    p99=nearest_rank(values, 99),
                )
            )
        return LatencyCounts(bins=bins, warnings=warnings, revisions=compared)

    def drift_counts(self, deployment, window, bin, baseline: BaselineProfile, *, end=None) -> DriftCounts:
        start, end = window_bounds(window, bin, end)
        step = bin.total_seconds()
        warnings: list[str] = []
        counts: dict[str, dict[datetime, list[int]]] = {f.name: {} for f in baseline.features}
        for line in self._lines(deployment, start, end, warnings):
            if not line.get("sampled") or str(line.get("model_version")) != str(baseline.model_version):
                continue
            key = self._bin_start(line["_time"], step)
            for row in line.get("inputs") or []:
                if not isinstance(row, dict):
                    continue
                for feature in baseline.features:
                    index = bin_index(feature, row.get(feature.name))
                    if index is None:
                        continue
                    cells = counts[feature.name].setdefault(key, [0] * len(feature.frequencies))
                    cells[index] += 1
        return DriftCounts(counts=counts, warnings=warnings)
