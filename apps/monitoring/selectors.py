"""Reads for the monitoring page and the API: typed series built from a telemetry source's aggregates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings

from apps.accounts.models import User
from apps.accounts.permissions import CHANGE_DRIFT_THRESHOLDS, SET_DRIFT_BASELINE, may
from apps.common.api import etag_of
from apps.common.errors import NotFoundError
from apps.monitoring.drift import chi2_pvalue, js_distance, psi
from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.sources.base import window_bounds
from apps.monitoring.types import (
    BaselineProfile,
    DriftCell,
    DriftSeries,
    FeatureDrift,
    LatencyPoint,
    LatencySeries,
    Window,
)

__all__ = [
    "baseline_upload_get",
    "baseline_uploads_recent",
    "earlier_baselines_get",
    "latency_series_get",
    "revision_changes",
    "drift_series_get",
    "deployment_drift_get",
    "drift_level",
    "monitored_version",
    "version_to_monitor",
    "drift_thresholds_get",
    "drift_thresholds_etag",
    "monitoring_permissions",
    "MonitoringPermissions",
]


def drift_thresholds_get(*, deployment) -> tuple[float, float]:
    """(warn, alert) PSI thresholds: the deployment's own, else the settings' defaults."""
    from apps.monitoring.models import DriftThresholds

    own = DriftThresholds.objects.filter(deployment_id=deployment.pk).first()
    if own is not None:
        return own.psi_warn, own.psi_alert
    return settings.MONITORING_PSI_WARN, settings.MONITORING_PSI_ALERT


def drift_thresholds_etag(*, deployment) -> str:
    """The ``ETag`` of the deployment's thresholds: what an ``If-Match`` must name to change them."""
    return etag_of(*drift_thresholds_get(deployment=deployment))


def latency_series_get(*, deployment, window: Window, end: datetime | None = None, source=None) -> LatencySeries:
    source = source or get_telemetry_source()
    start, end = window_bounds(window.span, window.bin, end or window.end)
    counts = source.latency_series(deployment, window.span, window.bin, end=end)
    seconds = window.bin.total_seconds()
    points = [
        LatencyPoint(
            time=b.start,
            requests=b.requests,
            rps=b.requests / seconds,
            error_rate=b.errors / b.requests if b.requests else None,
            rejected_rate=b.rejected / b.requests if b.requests else None,
            p50=b.p50,
            p95=b.p95,
            p99=b.p99,
            revision=b.revision,
        )
        for b in counts.bins
    ]
    changes = revision_changes(counts.bins)
    return LatencySeries(
        deployment_id=deployment.pk,
        window=window.key,
        bin_seconds=int(seconds),
        start=start,
        end=end,
        points=points,
        revision_changes=changes,
        warnings=counts.warnings,
        revisions=counts.revisions,
    )


def _revision_order(name: str) -> tuple[int, str]:
    digits = name[1:] if name[:1] == "r" else ""
    return (int(digits), name) if digits.isdigit() else (0, name)


def revision_changes(bins) -> list[tuple[datetime, str]]:
    """Where a revision starts answering: (bin start, revision) for each revision absent from the previous bin
    with traffic. Two revisions new in the same bin (deployed within a minute) are two entries at the same time,
    in revision order, so the chart can show both instead of only the busiest."""
    changes, previous = [], set()
    for b in bins:
        present = set(b.revisions or (b.revision,))
        changes += [(b.start, name) for name in sorted(present - previous, key=_revision_order)]
        previous = present
    return changes


def drift_level(value: float | None, *, warn: float, alert: float, rows: int = 0, min_rows: int = 0) -> str:
    if value is None:
        return "no data"
    if rows < min_rows:
        return "few rows"
    if value >= alert:
        return "alert"
    if value >= warn:
        return "warn"
    return "ok"


def monitored_version(deployment) -> str | None:
    """The model version whose inputs are compared: the live one, else the latest revision's."""
    if deployment.live_revision_id:
        return deployment.live_revision.model_version
    latest = deployment.revisions.order_by("-number").first()
    return latest.model_version if latest else None


def version_to_monitor(deployment, version: str | None = None) -> str:
    """``version`` when one is named, else :func:`monitored_version`; 404 when the deployment has none yet."""
    chosen = version or monitored_version(deployment)
    if chosen is None:
        raise NotFoundError(f"{deployment} has no revision yet, so there is no model version to monitor.")
    return str(chosen)


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _feature_drift(feature, per_time: dict, times: list[datetime], *, warn: float, alert: float) -> FeatureDrift:
    categorical = feature.kind == "categorical"
    cells = []
    for t in times:
        c = per_time.get(t)
        if not c or sum(c) == 0:
            continue
        cells.append(
            DriftCell(
                time=t,
                rows=int(sum(c)),
                psi=_finite(psi(feature.frequencies, c)),
                js=_finite(js_distance(feature.frequencies, c)),
                chi2_p=_finite(chi2_pvalue(feature.frequencies, c)) if categorical else None,
                counts=list(c),
            )
        )
    total = np.sum([cell.counts for cell in cells], axis=0) if cells else None
    rows = int(total.sum()) if total is not None else 0
    overall_psi = _finite(psi(feature.frequencies, total)) if total is not None else None
    return FeatureDrift(
        name=feature.name,
        kind=feature.kind,
        bin_labels=feature.bin_labels,
        baseline=list(feature.frequencies),
        cells=cells,
        rows=rows,
        psi=overall_psi,
        js=_finite(js_distance(feature.frequencies, total)) if total is not None else None,
        chi2_p=_finite(chi2_pvalue(feature.frequencies, total)) if total is not None and categorical else None,
        level=drift_level(overall_psi, warn=warn, alert=alert, rows=rows, min_rows=settings.MONITORING_MIN_ROWS),
    )


def drift_series_get(
    *, deployment, window: Window, baseline: BaselineProfile, end: datetime | None = None, source=None
) -> DriftSeries:
    """Drift of every input feature (ranked) and, when the baseline profiles predictions, of the outputs."""
    source = source or get_telemetry_source()
    start, end = window_bounds(window.span, window.bin, end or window.end)
    counts = source.drift_counts(deployment, window.span, window.bin, baseline, end=end)
    warn, alert = drift_thresholds_get(deployment=deployment)
    times = sorted({t for per_feature in counts.counts.values() for t in per_feature} | set(counts.prediction))
    features = [
        _feature_drift(feature, counts.counts.get(feature.name, {}), times, warn=warn, alert=alert)
        for feature in baseline.features
    ]
    # only judged features are ranked (alert, warn, ok by PSI); those with too few rows follow by name (their
    # PSI is noise, so it must not order them), then those without data
    features.sort(key=lambda f: (f.psi is None, f.level == "few rows", -(f.psi or 0.0) if f.judged else 0.0, f.name))
    prediction = (
        _feature_drift(baseline.prediction, counts.prediction, times, warn=warn, alert=alert)
        if baseline.prediction is not None
        else None
    )
    return DriftSeries(
        deployment_id=deployment.pk,
        window=window.key,
        bin_seconds=int(window.bin.total_seconds()),
        start=start,
        end=end,
        model_name=baseline.model_name,
        model_version=baseline.model_version,
        times=times,
        features=features,
        psi_warn=warn,
        psi_alert=alert,
        min_rows=settings.MONITORING_MIN_ROWS,
        warnings=counts.warnings,
        prediction=prediction,
    )


def deployment_drift_get(*, deployment, window: Window) -> DriftSeries:
    """Drift of what the deployment serves against its version's baseline (built on first use), for the
    monitoring page and ``GET .../metrics/drift/`` alike."""
    from apps.monitoring.services import baseline_ensure

    version = version_to_monitor(deployment)
    baseline = baseline_ensure(model_name=deployment.model_name, model_version=version).as_profile()
    return drift_series_get(deployment=deployment, window=window, baseline=baseline)


@dataclass(frozen=True)
class MonitoringPermissions:
    """What the monitoring page offers. Only a hint: the services check the same rules on every call."""

    can_set_thresholds: bool  # ML lead (or admin) in the deployment's environment
    can_set_baseline: bool  # ML lead in any environment: a baseline belongs to a model version, not to one place


def monitoring_permissions(*, deployment, user: User) -> MonitoringPermissions:
    return MonitoringPermissions(
        can_set_thresholds=may(user, CHANGE_DRIFT_THRESHOLDS, environment=deployment.environment),
        can_set_baseline=may(user, SET_DRIFT_BASELINE),
    )


def earlier_baselines_get(*, model_name: str, model_version: str) -> list:
    """The baselines of the version that newer ones replaced, newest first (restorable)."""
    from apps.monitoring.models import EarlierBaseline

    rows = EarlierBaseline.objects.filter(model_name=model_name, model_version=str(model_version))
    return list(rows.defer("profile"))


def baseline_upload_get(*, pk: int):
    """A baseline upload parsed by a worker (its status); 404 naming it when unknown."""
    from apps.monitoring.models import BaselineUpload

    upload = BaselineUpload.objects.filter(pk=pk).first()
    if upload is None:
        raise NotFoundError(f"No baseline upload {pk}.")
    return upload


def baseline_uploads_recent(*, model_name: str, model_version: str, limit: int = 5) -> list:
    """The latest uploads of the version parsed by a worker, newest first, for the monitoring page."""
    from apps.monitoring.models import BaselineUpload

    return list(BaselineUpload.objects.filter(model_name=model_name, model_version=str(model_version))[:limit])
