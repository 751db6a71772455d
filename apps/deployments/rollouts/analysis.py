"""One analysis interval of a progressive rollout: read the telemetry of the interval per revision and judge the
candidate against the strategy's thresholds. Pure judging over what a ``TelemetrySource`` returns; the runner
stores the checks (``AnalysisCheck``).

CONTRACT (filled in by the analysis work):

    analyse(strategy, *, deployment, candidate, stable, candidate_version, start, end, source=None) -> Analysis

``candidate``/``stable`` are revision labels ("r4"); ``stable`` may be None (nothing to compare with). The result
lists one ``Check`` per metric: requests (wait below ``min_requests``), error_rate, p99_ms, p50_ms (when asked),
drift (when the candidate's version has a baseline and ``max_drift`` is set), agreement (when mirrored traffic
was compared and ``min_agreement`` is set). ``Analysis.verdict`` is "wait" when any check waits and none fails,
"fail" when any fails, else "pass".

Below ``min_requests`` only the requests check judges (it waits); the others are "skip" with their values, so
a handful of requests never fails a rollout. The stable revision's error rate and p99 come as "skip" checks
(``subject`` = its label), context for the charts. What each metric means: ``docs/monitoring.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from apps.common.errors import NotFoundError
from apps.deployments.rollouts.strategy import Strategy
from apps.monitoring.drift import psi
from apps.monitoring.sources import get_telemetry_source
from apps.monitoring.types import RevisionWindow

__all__ = ["Check", "Analysis", "analyse"]


@dataclass(frozen=True)
class Check:
    metric: str  # requests, error_rate, p99_ms, p50_ms, drift, agreement
    subject: str  # the revision label the value is of
    value: float | None
    threshold: float | None
    verdict: str  # CheckVerdict: pass, fail, wait, skip
    message: str = ""  # for people: "error rate 12.0% > 1.0% on r4 (6 of 50 requests)"


@dataclass(frozen=True)
class Analysis:
    checks: list[Check] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        if "fail" in verdicts:
            return "fail"
        if "wait" in verdicts:
            return "wait"
        return "pass"

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]


def analyse(
    strategy: Strategy,
    *,
    deployment,
    candidate: str,
    stable: str | None,
    candidate_version: str,
    start: datetime,
    end: datetime,
    source=None,
) -> Analysis:
    """Judge ``candidate`` over ``[start, end)``: one read of both revisions' windows, then drift (one read when
    it is asked for and there is a baseline) and agreement (one read on mirrored strategies)."""
    source = source or get_telemetry_source()
    labels = [candidate] if stable in (None, candidate) else [candidate, stable]
    windows = source.revision_windows(deployment, start=start, end=end, revisions=labels)
    ours = windows[candidate]
    judged = ours.requests >= strategy.min_requests
    checks = [
        _requests(ours, strategy.min_requests),
        _error_rate(ours, strategy.max_error_rate, judged=judged, minimum=strategy.min_requests),
        _latency("p99_ms", "p99", ours, ours.p99, strategy.max_p99_ms, judged=judged, minimum=strategy.min_requests),
    ]
    if strategy.max_p50_ms is not None:
        checks.append(
            _latency("p50_ms", "p50", ours, ours.p50, strategy.max_p50_ms, judged=judged, minimum=strategy.min_requests)
        )
    if strategy.max_drift is not None:
        checks.append(_drift(strategy, source, deployment, ours, candidate_version, start, end, judged=judged))
    if stable not in (None, candidate) and strategy.min_agreement is not None and strategy.mirror():
        checks.append(_agreement(strategy, source, deployment, ours, stable, start, end, judged=judged))
    if stable not in (None, candidate):
        checks += _context(strategy, windows[stable])
    return Analysis(checks=checks)


# ---------------------------------------------------------------------------- one check each
def _percent(share: float) -> str:
    text = f"{share * 100:.1f}"
    return (text if float(text) == round(share * 100, 9) else f"{share * 100:.3g}") + "%"


def _not_judged(minimum: int) -> str:
    return f"not judged below {minimum} requests"


def _requests(w: RevisionWindow, minimum: int) -> Check:
    mirrored = f", {w.shadow} mirrored" if w.shadow else ""
    if w.requests < minimum:
        message = f"{w.requests} requests on {w.revision}{mirrored}, fewer than the {minimum} needed: waiting"
        return Check("requests", w.revision, w.requests, minimum, "wait", message)
    message = f"{w.requests} requests on {w.revision}{mirrored} (at least {minimum} needed)"
    return Check("requests", w.revision, w.requests, minimum, "pass", message)


def _error_rate(w: RevisionWindow, limit: float, *, judged: bool, minimum: int) -> Check:
    rate = w.error_rate
    if rate is None:
        return Check("error_rate", w.revision, None, limit, "skip", f"no requests on {w.revision}: no error rate")
    text = f"error rate {_percent(rate)}"
    numbers = f"on {w.revision} ({w.errors} of {w.requests} requests)"
    if not judged:
        return Check("error_rate", w.revision, rate, limit, "skip", f"{text} {numbers}, {_not_judged(minimum)}")
    failed = rate > limit
    message = f"{text} {'>' if failed else '<='} {_percent(limit)} {numbers}"
    return Check("error_rate", w.revision, rate, limit, "fail" if failed else "pass", message)


def _latency(metric: str, name: str, w: RevisionWindow, value, limit: float, *, judged: bool, minimum: int) -> Check:
    if value is None:
        return Check(metric, w.revision, None, limit, "skip", f"no requests on {w.revision}: no {name}")
    numbers = f"on {w.revision} ({w.requests} requests)"
    if not judged:
        message = f"{name} {value:.1f} ms {numbers}, {_not_judged(minimum)}"
        return Check(metric, w.revision, value, limit, "skip", message)
    failed = value > limit
    message = f"{name} {value:.1f} ms {'>' if failed else '<='} {limit:g} ms {numbers}"
    return Check(metric, w.revision, value, limit, "fail" if failed else "pass", message)


def _interval_bin(start: datetime) -> timedelta:
    """A time bin one of which starts exactly at ``start`` (to the second) in both stores: it divides a day
    (Kusto aligns bins on 0001-01-01, the local source on 1970-01-01, both midnights) and the seconds since
    midnight, so ``drift_counts`` over ``end - start`` counts exactly the interval."""
    return timedelta(seconds=math.gcd(int(start.timestamp()) % 86_400, 86_400))


def _drift(strategy, source, deployment, w: RevisionWindow, version: str, start, end, *, judged: bool) -> Check:
    from apps.monitoring.services import baseline_ensure

    limit = strategy.max_drift
    if not judged:
        return Check("drift", w.revision, None, limit, "skip", f"drift {_not_judged(strategy.min_requests)}")
    try:
        baseline = baseline_ensure(model_name=deployment.model_name, model_version=str(version)).as_profile()
    except NotFoundError as exc:
        message = f"no drift baseline for {deployment.model_name} v{version}: {exc.message}"
        return Check("drift", w.revision, None, limit, "skip", message[:500])
    counts = source.drift_counts(deployment, end - start, _interval_bin(start), baseline, end=end, revision=w.revision)
    min_rows = settings.MONITORING_MIN_ROWS
    scored = []  # (psi, feature, rows) of the features with enough sampled values to judge
    most = 0
    for feature in baseline.features:
        per_time = list(counts.counts.get(feature.name, {}).values())
        totals = [sum(column) for column in zip(*per_time, strict=True)] if per_time else []
        rows = sum(totals)
        most = max(most, rows)
        if rows >= min_rows:
            scored.append((psi(feature.frequencies, totals), feature.name, rows))
    if not scored:
        message = (
            f"too few sampled rows of v{version} on {w.revision} to judge drift ({most} in the best-covered "
            f"feature, {min_rows} needed)"
        )
        return Check("drift", w.revision, None, limit, "skip", message)
    value, name, rows = max(scored)
    failed = value > limit
    message = (
        f"drift PSI {value:.3f} {'>' if failed else '<='} {limit:g} on {w.revision} "
        f"(worst feature {name}, {rows} sampled rows, baseline of v{version})"
    )
    return Check("drift", w.revision, value, limit, "fail" if failed else "pass", message[:500])


def _agreement(strategy, source, deployment, w: RevisionWindow, stable: str, start, end, *, judged: bool) -> Check:
    limit = strategy.min_agreement
    if not judged:
        return Check("agreement", w.revision, None, limit, "skip", f"agreement {_not_judged(strategy.min_requests)}")
    result = source.agreement(deployment, stable=stable, candidate=w.revision, start=start, end=end)
    if not result.compared:
        message = f"no mirrored request was sampled on both {stable} and {w.revision}: agreement not measured"
        return Check("agreement", w.revision, None, limit, "skip", message)
    if result.compared < strategy.min_compared:
        message = (
            f"only {result.compared} mirrored requests were sampled on both {stable} and {w.revision} "
            f"({strategy.min_compared} needed): agreement not judged ({result.equal} predicted the same)"
        )
        return Check("agreement", w.revision, result.rate, limit, "skip", message)
    rate = result.rate
    failed = rate < limit
    difference = f"; largest numeric difference {result.max_abs_difference:.3g}" if result.max_abs_difference else ""
    message = (
        f"agreement {_percent(rate)} {'<' if failed else '>='} {_percent(limit)} on {w.revision} vs {stable} "
        f"({result.equal} of {result.compared} mirrored requests predicted the same{difference})"
    )
    return Check("agreement", w.revision, rate, limit, "fail" if failed else "pass", message)


def _context(strategy: Strategy, w: RevisionWindow) -> list[Check]:
    """The stable revision's error rate and p99 over the same interval, with the candidate's thresholds so both
    chart against them; informational ("skip")."""
    rate = w.error_rate
    rate_text = (
        f"error rate {_percent(rate)} ({w.errors} of {w.requests} requests)" if rate is not None else "no requests"
    )
    p99_text = f"p99 {w.p99:.1f} ms ({w.requests} requests)" if w.p99 is not None else "no p99"
    return [
        Check("error_rate", w.revision, rate, strategy.max_error_rate, "skip", f"stable {w.revision}: {rate_text}"),
        Check("p99_ms", w.revision, w.p99, strategy.max_p99_ms, "skip", f"stable {w.revision}: {p99_text}"),
    ]
