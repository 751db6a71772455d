"""The interface every telemetry source implements, and the getter that returns the configured one.

A source answers with aggregates only: percentiles and counts per time bin for latency, counts per baseline
bin per feature and time bin for drift. The selectors turn them into series (rates, PSI, ...).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Protocol

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.common.errors import ApplicationError
from apps.monitoring.types import (
    Agreement,
    BaselineProfile,
    DriftCounts,
    LatencyCounts,
    RequestTotals,
    RevisionWindow,
)

__all__ = [
    "SOURCES",
    "TelemetrySource",
    "SampledRows",
    "TelemetryError",
    "TelemetryUnavailableError",
    "get_telemetry_source",
    "window_bounds",
]

# name -> dotted path, imported on first use so that cloud SDKs load only when selected.
SOURCES = {
    "local": "apps.monitoring.sources.local.LocalTelemetrySource",
    "azure_monitor": "apps.monitoring.sources.azure_monitor.AzureMonitorTelemetrySource",
}


class TelemetryError(ApplicationError):
    """The telemetry store answered with an error (a bad query, refused credentials): 502 in the API."""

    status_code = 502
    code = "telemetry_error"


class TelemetryUnavailableError(ApplicationError):
    """The telemetry store cannot be reached (network, timeout, throttled past retries): 503 in the API."""

    status_code = 503
    code = "telemetry_unavailable"


class DeploymentLike(Protocol):
    name: str
    model_name: str

    @property
    def environment(self): ...


def window_bounds(window: timedelta, bin: timedelta, end: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a window ending now (or at ``end``), with ``start`` aligned down to a bin boundary."""
    end = end or datetime.now(UTC)
    start = end - window
    step = bin.total_seconds()
    start = datetime.fromtimestamp((start.timestamp() // step) * step, UTC)
    return start, end


@dataclass
class SampledRows:
    """Sampled input rows, one per row: when (epoch seconds), its inputs (a column per input field) and the
    model's prediction for it (None where the line carried none)."""

    times: np.ndarray
    inputs: pd.DataFrame
    outputs: pd.Series

    def __len__(self) -> int:
        return len(self.times)


class TelemetrySource(abc.ABC):
    """Reads the scoring telemetry (``docs/telemetry.md``) of one deployment, aggregated per time bin."""

    name: str = ""

    @abc.abstractmethod
    def latency_series(
        self, deployment: DeploymentLike, window: timedelta, bin: timedelta, *, end: datetime | None = None
    ) -> LatencyCounts:
        """Per time bin of ``bin`` over the last ``window`` (until ``end``, default now): request count, errors
        (status >= 500), rejections (4xx), p50/p95/p99 of ``latency_ms`` and the revision that answered most
        requests. Bins without requests are left out; bins start at multiples of ``bin`` since the epoch."""

    @abc.abstractmethod
    def request_totals(
        self,
        deployment: DeploymentLike,
        windows: list[timedelta],
        *,
        slow_above_ms: float | None = None,
        end: datetime | None = None,
    ) -> list[RequestTotals]:
        """One total per window of ``windows`` (in that order), each ``[end - window, end)`` with no alignment to
        bins: requests, errors (status >= 500), requests slower than ``slow_above_ms`` and, for the longest
        window, the p99 latency. One read (one query) for all the windows: what the alert rules and SLOs ask."""

    @abc.abstractmethod
    def drift_counts(
        self,
        deployment: DeploymentLike,
        window: timedelta,
        bin: timedelta,
        baseline: BaselineProfile,
        *,
        end: datetime | None = None,
        revision: str | None = None,
    ) -> DriftCounts:
        """Per feature of ``baseline`` and time bin: how many sampled input values fell in each baseline bin
        (numeric: between the baseline's edges; categorical: each category, then "other"). Missing values
        are not counted. Only lines of ``baseline.model_version`` count (and of ``revision`` when named, its
        mirrored copies included). When the baseline has a ``prediction`` profile, ``DriftCounts.prediction``
        counts the sampled outputs the same way."""

    @abc.abstractmethod
    def revision_windows(
        self, deployment: DeploymentLike, *, start: datetime, end: datetime, revisions: list[str]
    ) -> dict[str, RevisionWindow]:
        """Per revision label of ``revisions`` (every one has an entry, zero without lines), over exactly
        ``[start, end)``: requests, errors (status >= 500), how many were mirrored copies (``"shadow": true``,
        counted among the requests: in a shadow or blue-green rollout they are the candidate's traffic), and the
        p50/p99 of ``latency_ms``. One read (one query) for all the revisions: what a rollout's analysis asks."""

    @abc.abstractmethod
    def agreement(
        self, deployment: DeploymentLike, *, stable: str, candidate: str, start: datetime, end: datetime
    ) -> Agreement:
        """The predictions of revision ``stable`` and of the mirrored copies (``"shadow": true``) answered by
        revision ``candidate`` of the same requests, over ``[start, end)``: the sampled lines of both with outputs,
        joined by ``request_id`` (the earliest line of a request id on each side), compared by the rule of
        ``apps.monitoring.agreement``. Only request ids sampled on both sides count, which the scoring server's
        sampling by request id makes the norm for mirrored requests."""

    @abc.abstractmethod
    def sampled_rows(
        self, deployment: DeploymentLike, *, start: datetime, end: datetime, model_version: str, limit: int
    ) -> SampledRows:
        """At most ``limit`` sampled input rows (with their predictions) of ``model_version`` between ``start``
        and ``end``, a random sample when there are more: the raw material of a baseline built from traffic.
        The one read that returns rows rather than aggregates, bounded by ``limit``."""


_instances: dict[tuple, TelemetrySource] = {}


def get_telemetry_source(name: str | None = None) -> TelemetrySource:
    """The configured source (``TELEMETRY_SOURCE``), built from ``TELEMETRY_SOURCE_OPTIONS[name]``."""
    name = name or settings.TELEMETRY_SOURCE
    if name not in SOURCES:
        raise ImproperlyConfigured(f"TELEMETRY_SOURCE={name!r}: use one of {', '.join(SOURCES)}")
    options = dict(settings.TELEMETRY_SOURCE_OPTIONS.get(name, {}))
    key = (name, tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _instances:
        module, _, cls = SOURCES[name].rpartition(".")
        _instances[key] = getattr(import_module(module), cls)(**options)
    return _instances[key]
