"""What a rule decides from telemetry: the math of burn rates and thresholds, and the one read per rule.

``decide(rule, now)`` reads the rule's telemetry once (one source call, so one KQL query on Azure Monitor, for all
the windows a rule needs) and returns a :class:`Decision`. The burn-rate and threshold functions below are pure,
so they are checked against hand-computed windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings

from apps.alerts.choices import DriftStatistic, Metric, Severity, SloKind
from apps.common.errors import ApplicationError
from apps.monitoring.drift import js_distance, psi
from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.types import RequestTotals

__all__ = [
    "BURN_RATE_WINDOWS",
    "BurnWindow",
    "Decision",
    "SloStatus",
    "burn_rate",
    "burn_rate_decision",
    "threshold_decision",
    "drift_decision",
    "slo_status",
    "decide",
]


@dataclass(frozen=True)
class BurnWindow:
    """Page (or ticket) when the error budget burns at ``factor`` times the sustainable rate over ``long`` and,
    confirming it is still happening, over ``short``."""

    long: timedelta
    short: timedelta
    factor: float
    severity: str


# The Google SRE workbook's multi-window, multi-burn-rate alerts (chapter 5, "Alerting on SLOs"): 2% of a 30-day
# budget in 1 h, 5% in 6 h (page), 10% in 3 days (ticket).
BURN_RATE_WINDOWS = (
    BurnWindow(timedelta(hours=1), timedelta(minutes=5), 14.4, Severity.PAGE),
    BurnWindow(timedelta(hours=6), timedelta(minutes=30), 6.0, Severity.PAGE),
    BurnWindow(timedelta(days=3), timedelta(hours=6), 1.0, Severity.TICKET),
)
# Drift rules read sampled rows per minute and add them up over the window.
_DRIFT_BIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Decision:
    """``breached``: True (the condition holds now), False (it does not), None (cannot tell: too little traffic,
    too few sampled rows, the store unreachable; ``note`` says which)."""

    breached: bool | None
    value: float | None = None
    threshold: float | None = None
    severity: str = Severity.PAGE
    note: str = ""


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _bad(kind: str, totals: RequestTotals) -> int:
    return totals.errors if kind == SloKind.AVAILABILITY else totals.slow


def burn_rate(kind: str, target: float, totals: RequestTotals) -> float | None:
    """How fast the window spends the error budget: its bad share over the budget (1 - target). 1 spends the
    budget exactly over the SLO period; None without requests."""
    if not totals.requests:
        return None
    return (_bad(kind, totals) / totals.requests) / (1.0 - target)


def burn_rate_decision(
    *, kind: str, target: float, totals: dict[timedelta, RequestTotals], min_requests: int
) -> Decision:
    """The first window pair of :data:`BURN_RATE_WINDOWS` whose long and short windows both burn at least its
    factor fires (pages before tickets). A pair whose long window holds fewer than ``min_requests`` requests
    does not decide, so a quiet endpoint does not page on one error."""
    decided, notes = False, []
    for pair in BURN_RATE_WINDOWS:
        long, short = totals[pair.long], totals[pair.short]
        if long.requests < min_requests:
            notes.append(f"{long.requests} requests in {_duration(pair.long)} (at least {min_requests} needed)")
            continue
        decided = True
        long_rate, short_rate = burn_rate(kind, target, long), burn_rate(kind, target, short)
        if long_rate is not None and short_rate is not None and long_rate >= pair.factor and short_rate >= pair.factor:
            return Decision(
                True,
                value=long_rate,
                threshold=pair.factor,
                severity=pair.severity,
                note=f"burn rate {long_rate:.1f}x over {_duration(pair.long)} and {short_rate:.1f}x over "
                f"{_duration(pair.short)} (>= {pair.factor:g}x)",
            )
    if not decided:
        return Decision(None, note="Too little traffic to judge: " + "; ".join(notes) + ".")
    rate = burn_rate(kind, target, totals[BURN_RATE_WINDOWS[0].long])
    return Decision(False, value=rate, note="; ".join(notes))


def threshold_decision(*, metric: str, threshold: float, totals: RequestTotals, min_requests: int) -> Decision:
    """Error rate (5xx share) or p99 latency over the window against ``threshold`` (breached when above)."""
    if totals.requests < min_requests:
        return Decision(
            None,
            threshold=threshold,
            note=f"Too little traffic to judge: {totals.requests} requests in {_duration(totals.window)} "
            f"(at least {min_requests} needed).",
        )
    value = totals.errors / totals.requests if metric == Metric.ERROR_RATE else totals.p99
    if value is None:
        return Decision(None, threshold=threshold, note="No latency in the window.")
    return Decision(value > threshold, value=value, threshold=threshold)


def drift_decision(
    *, feature_counts: dict[str, tuple[list[float], list[int]]], statistic: str, threshold: float, min_rows: int
) -> Decision:
    """The most drifting feature among those with at least ``min_rows`` sampled rows (``feature_counts``: name
    -> (baseline frequencies, counts in the window)). With no feature judged it says so and does not decide."""
    judged, most_rows = [], 0
    for name, (frequencies, counts) in feature_counts.items():
        rows = int(sum(counts))
        most_rows = max(most_rows, rows)
        if rows < min_rows:
            continue
        value = psi(frequencies, counts) if statistic == DriftStatistic.PSI else js_distance(frequencies, counts)
        if np.isfinite(value):
            judged.append((value, name, rows))
    if not judged:
        return Decision(
            None,
            threshold=threshold,
            note=f"Not enough sampled rows to judge drift: {most_rows} in the window, at least {min_rows} needed.",
        )
    value, name, rows = max(judged)
    label = "PSI" if statistic == DriftStatistic.PSI else "JS distance"
    return Decision(
        value > threshold, value=value, threshold=threshold, note=f"{label} of {name}: {value:.3f} ({rows} rows)"
    )


# ---------------------------------------------------------------------------- reading the telemetry
def _min_requests(rule) -> int:
    return rule.min_requests or settings.ALERTS_MIN_REQUESTS


def _totals(deployment, windows, *, slow_above_ms, now) -> dict[timedelta, RequestTotals]:
    source = get_telemetry_source()
    answer = source.request_totals(deployment, list(windows), slow_above_ms=slow_above_ms, end=now)
    return {t.window: t for t in answer}


def _decide_drift(rule, now: datetime) -> Decision:
    from apps.monitoring.selectors import version_to_monitor
    from apps.monitoring.services import baseline_ensure

    deployment = rule.deployment
    version = version_to_monitor(deployment)
    baseline = baseline_ensure(model_name=deployment.model_name, model_version=version).as_profile()
    window = timedelta(seconds=rule.window_seconds)
    counts = get_telemetry_source().drift_counts(deployment, window, _DRIFT_BIN, baseline, end=now)
    start = (now - window).timestamp()

    def added(per_time: dict, size: int) -> list[int]:
        total = np.zeros(size, dtype=np.int64)
        for t, cells in per_time.items():
            if t.timestamp() >= start:  # the window, not the bin-aligned read
                total += np.asarray(cells, dtype=np.int64)
        return total.tolist()

    if rule.metric == Metric.PREDICTION_DRIFT:
        if baseline.prediction is None:
            return Decision(None, threshold=rule.threshold, note="The baseline has no predictions to compare.")
        features = {
            "prediction": (
                baseline.prediction.frequencies,
                added(counts.prediction, len(baseline.prediction.frequencies)),
            )
        }
    else:
        features = {
            f.name: (f.frequencies, added(counts.counts.get(f.name, {}), len(f.frequencies))) for f in baseline.features
        }
    return drift_decision(
        feature_counts=features,
        statistic=rule.statistic,
        threshold=rule.threshold,
        min_rows=rule.min_rows or settings.MONITORING_MIN_ROWS,
    )


def decide(rule, now: datetime) -> Decision:
    """What ``rule`` says at ``now``: one read of the telemetry source. A store that fails is a Decision that
    cannot tell (with the store's message), so one broken rule does not stop the pass."""
    try:
        if rule.metric == Metric.BURN_RATE:
            slo = rule.slo
            windows = {w for pair in BURN_RATE_WINDOWS for w in (pair.long, pair.short)}
            slow = slo.latency_threshold_ms if slo.kind == SloKind.LATENCY else None
            totals = _totals(rule.deployment, sorted(windows), slow_above_ms=slow, now=now)
            return burn_rate_decision(kind=slo.kind, target=slo.target, totals=totals, min_requests=_min_requests(rule))
        if rule.metric in (Metric.DRIFT, Metric.PREDICTION_DRIFT):
            return _decide_drift(rule, now)
        window = timedelta(seconds=rule.window_seconds)
        totals = _totals(rule.deployment, [window], slow_above_ms=None, now=now)[window]
        return threshold_decision(
            metric=rule.metric, threshold=rule.threshold, totals=totals, min_requests=_min_requests(rule)
        )
    except ApplicationError as exc:
        return Decision(None, threshold=rule.threshold, note=f"Not evaluated: {exc.message}")


# ---------------------------------------------------------------------------- SLO status for the pages
@dataclass(frozen=True)
class SloStatus:
    """An SLO over its period: ``attainment`` (good share), ``budget_left`` (share of the error budget not
    spent; negative when overspent), ``burn_rate`` over the last hour. None where there were no requests."""

    requests: int
    bad: int
    attainment: float | None
    budget_left: float | None
    burn_rate_1h: float | None
    requests_1h: int


def slo_status(slo, *, now: datetime) -> SloStatus:
    """One read (period and last hour together) of the SLO's deployment."""
    period, hour = timedelta(days=slo.period_days), timedelta(hours=1)
    slow = slo.latency_threshold_ms if slo.kind == SloKind.LATENCY else None
    totals = _totals(slo.deployment, [period, hour], slow_above_ms=slow, now=now)
    whole, last_hour = totals[period], totals[hour]
    bad = _bad(slo.kind, whole)
    attainment = 1 - bad / whole.requests if whole.requests else None
    budget_left = 1 - (bad / whole.requests) / (1 - slo.target) if whole.requests else None
    return SloStatus(
        requests=whole.requests,
        bad=bad,
        attainment=attainment,
        budget_left=budget_left,
        burn_rate_1h=burn_rate(slo.kind, slo.target, last_hour),
        requests_1h=last_hour.requests,
    )
