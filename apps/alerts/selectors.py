"""Reads for the alerts pages and the API: alerts (firing first), SLOs with their status, what a viewer may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import (
    ACKNOWLEDGE_ALERTS,
    CHANGE_ALERT_RULES,
    SILENCE_ALERTS,
    environments_with_a_role,
    may,
)
from apps.alerts.choices import AlertState
from apps.alerts.evaluation import SloStatus, slo_status
from apps.alerts.models import Alert, AlertRule, Silence, Slo
from apps.common.errors import ApplicationError, NotFoundError

__all__ = [
    "alert_list",
    "alert_get",
    "firing_count",
    "slo_list",
    "slo_get",
    "slo_statuses",
    "rule_list",
    "rule_get",
    "silence_list",
    "alert_permissions",
    "AlertPermissions",
    "chart_window",
]


def alert_list() -> QuerySet[Alert]:
    """Every alert, firing first, then acknowledged, then resolved; newest first within each."""
    order = Case(
        When(state=AlertState.FIRING, then=Value(0)),
        When(state=AlertState.ACKNOWLEDGED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return (
        Alert.objects.select_related("deployment__environment", "rule__slo", "acknowledged_by")
        .annotate(state_order=order)
        .order_by("state_order", "-fired_at", "-pk")
    )


def alert_get(*, pk: int) -> Alert:
    alert = alert_list().prefetch_related("transitions__actor").filter(pk=pk).first()
    if alert is None:
        raise NotFoundError(f"Alert {pk} does not exist.")
    return alert


def firing_count(*, user: User) -> int:
    return Alert.objects.filter(
        state=AlertState.FIRING, deployment__environment__in=environments_with_a_role(user)
    ).count()


def slo_list() -> QuerySet[Slo]:
    return Slo.objects.select_related("deployment__environment").order_by("deployment_id", "kind", "pk")


def slo_get(*, pk: int) -> Slo:
    slo = slo_list().filter(pk=pk).first()
    if slo is None:
        raise NotFoundError(f"SLO {pk} does not exist.")
    return slo


def slo_statuses(*, deployment, now: datetime | None = None) -> list[tuple[Slo, SloStatus | None, str]]:
    """Each SLO of ``deployment`` with its status (None and the reason when the telemetry cannot be read)."""
    now = now or timezone.now()
    answer = []
    for slo in slo_list().filter(deployment=deployment):
        try:
            answer.append((slo, slo_status(slo, now=now), ""))
        except ApplicationError as exc:
            answer.append((slo, None, exc.message))
    return answer


def rule_list() -> QuerySet[AlertRule]:
    return AlertRule.objects.select_related("deployment__environment", "slo").order_by("deployment_id", "pk")


def rule_get(*, pk: int) -> AlertRule:
    rule = rule_list().filter(pk=pk).first()
    if rule is None:
        raise NotFoundError(f"Alert rule {pk} does not exist.")
    return rule


def silence_list(*, active_only: bool = False) -> QuerySet[Silence]:
    silences = Silence.objects.select_related("deployment__environment", "rule__deployment", "created_by")
    return silences.filter(until__gt=timezone.now()) if active_only else silences


@dataclass(frozen=True)
class AlertPermissions:
    """What a page about one deployment's alerts offers. Only a hint: the services check again."""

    can_acknowledge: bool
    can_silence: bool
    can_change_rules: bool


def alert_permissions(*, deployment, user: User) -> AlertPermissions:
    environment = deployment.environment
    return AlertPermissions(
        can_acknowledge=may(user, ACKNOWLEDGE_ALERTS, environment=environment),
        can_silence=may(user, SILENCE_ALERTS, environment=environment),
        can_change_rules=may(user, CHANGE_ALERT_RULES, environment=environment),
    )


def chart_window(alert: Alert, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The span the alert's chart shows: from an hour (or the rule's window, if longer) before it fired to an
    hour after (or to its resolution and 15 minutes more, or now when sooner)."""
    now = now or timezone.now()
    before = max(timedelta(hours=1), timedelta(seconds=alert.rule.window_seconds))
    start = alert.fired_at - before
    end = (alert.resolved_at + timedelta(minutes=15)) if alert.resolved_at else alert.fired_at + timedelta(hours=1)
    return start, min(end, max(now, alert.fired_at + timedelta(minutes=1)))


@dataclass(frozen=True)
class MetricSeries:
    """What the alert detail charts: the rule's metric per time bin, the threshold, and when it fired."""

    label: str
    times: list[datetime]
    values: list[float | None]
    threshold: float | None
    fired_at: datetime
    resolved_at: datetime | None


def alert_metric_series(alert: Alert, *, now: datetime | None = None) -> MetricSeries:
    """The metric of ``alert``'s rule around its firing time, read through the monitoring selectors (one read of
    the telemetry source): error rate or p99 per bin, the top feature's drift per bin; a burn-rate alert shows
    the error rate (availability) or p99 (latency) against what its firing burn rate means."""
    from apps.alerts.choices import Metric, SloKind
    from apps.monitoring import selectors as monitoring
    from apps.monitoring.types import Window, window_get

    rule = alert.rule
    start, end = chart_window(alert, now=now)
    custom = window_get("custom", start=start.isoformat(), end=end.isoformat())
    window = Window("custom", custom.label, custom.span, custom.bin, end=custom.end)
    common = {"fired_at": alert.fired_at, "resolved_at": alert.resolved_at}
    if rule.metric in (Metric.DRIFT, Metric.PREDICTION_DRIFT):
        series = monitoring.deployment_drift_get(deployment=alert.deployment, window=window)
        feature = series.prediction if rule.metric == Metric.PREDICTION_DRIFT else (series.features or [None])[0]
        cells = feature.cells if feature is not None else []
        name = feature.name if feature is not None else "?"
        stat = rule.statistic
        return MetricSeries(
            label=f"{stat.upper()} of {name}",
            times=[c.time for c in cells],
            values=[getattr(c, stat) for c in cells],
            threshold=rule.threshold,
            **common,
        )
    series = monitoring.latency_series_get(deployment=alert.deployment, window=window)
    times = [p.time for p in series.points]
    if rule.metric == Metric.BURN_RATE:
        slo = rule.slo
        if slo.kind == SloKind.AVAILABILITY:
            limit = (1 - slo.target) * (alert.threshold or 1)
            return MetricSeries("error rate", times, [p.error_rate for p in series.points], limit, **common)
        return MetricSeries("p99 ms", times, [p.p99 for p in series.points], slo.latency_threshold_ms, **common)
    if rule.metric == Metric.ERROR_RATE:
        return MetricSeries("error rate", times, [p.error_rate for p in series.points], rule.threshold, **common)
    return MetricSeries("p99 ms", times, [p.p99 for p in series.points], rule.threshold, **common)
