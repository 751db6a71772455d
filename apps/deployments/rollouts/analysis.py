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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from apps.deployments.rollouts.strategy import Strategy

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
    raise NotImplementedError("analysis: being written")
