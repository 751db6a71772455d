"""Baselines from a window of a deployment's own traffic: "the last day of this deployment is what normal looks
like". The sampled input rows (and predictions) of the window are profiled like any reference data set."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from apps.accounts.permissions import SET_DRIFT_BASELINE, require
from apps.accounts.services import audit_record
from apps.common.errors import ApplicationError
from apps.monitoring.drift import profile_build
from apps.monitoring.models import Baseline
from apps.monitoring.selectors import version_to_monitor
from apps.monitoring.services import baseline_store
from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.types import Window

__all__ = ["MAX_TRAFFIC_BASELINE_ROWS", "baseline_from_traffic"]

# At most this many sampled rows are read back (a random sample beyond): plenty for deciles and top-10 shares.
MAX_TRAFFIC_BASELINE_ROWS = 100_000


def _min_rows() -> int:
    return int(getattr(settings, "MONITORING_MIN_ROWS", 100))


def baseline_from_traffic(*, actor, deployment, window: Window) -> Baseline:
    """Replace the baseline of the model version the deployment serves with the profile of the sampled requests
    of that version in ``window`` (a preset ending now, or a custom start/end). Leads only; audited. A window
    in the future, or with fewer than ``MONITORING_MIN_ROWS`` sampled rows, is refused with the reason."""
    require(actor, SET_DRIFT_BASELINE)
    version = version_to_monitor(deployment)
    end = window.end or datetime.now(UTC)
    start = end - window.span
    if start >= datetime.now(UTC):
        raise ApplicationError("The window starts in the future: there is no traffic there yet.", code="no_traffic")
    rows = get_telemetry_source().sampled_rows(
        deployment, start=start, end=end, model_version=str(version), limit=MAX_TRAFFIC_BASELINE_ROWS
    )
    span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if len(rows) == 0 or rows.inputs.empty:
        raise ApplicationError(
            f"No sampled requests of v{version} from {span}: nothing to build a baseline from. Sampling is "
            "SCORING_TELEMETRY_SAMPLE_RATE of the requests; choose a window with traffic.",
            code="no_traffic",
        )
    if len(rows) < _min_rows():
        raise ApplicationError(
            f"Only {len(rows)} sampled rows of v{version} from {span}; a baseline needs at least {_min_rows()}.",
            code="too_little_traffic",
        )
    outputs = rows.outputs if rows.outputs.notna().any() else None
    profile = profile_build(
        rows.inputs,
        model_name=deployment.model_name,
        model_version=str(version),
        bins=settings.MONITORING_BASELINE_BINS,
        top_k=settings.MONITORING_BASELINE_TOP_K,
        predictions=outputs,
    )
    origin = {"deployment": deployment.pk, "start": start.isoformat(), "end": end.isoformat()}
    with transaction.atomic():
        baseline = baseline_store(
            model_name=deployment.model_name,
            model_version=str(version),
            source=Baseline.Source.TRAFFIC,
            profile={**profile.to_json(), "origin": origin},
            rows=profile.rows,
        )
        audit_record(
            actor=actor,
            action="monitoring.baseline_from_traffic",
            target_type="model_version",
            target_id=f"{deployment.model_name}/{version}",
            data={**origin, "rows": profile.rows, "prediction": profile.prediction is not None},
        )
    return baseline
