"""A progressive rollout as the worker leaves it in the database mid-way, for the revision page's tests: no worker,
no target, only the rows (the revision's rollout fields, its steps, its stored analysis checks)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from apps.deployments.models import AnalysisCheck, Deployment, Revision, RevisionStep
from apps.deployments.rollouts.strategy import strategy_parse
from apps.deployments.services import DEPLOY_STEPS

CANARY = {"type": "canary", "steps": [20, 50], "step_seconds": 60, "max_error_rate": 0.01, "max_p99_ms": 500}


def _checks(revision: Revision, *, step: int, weight: int, at: datetime, rate: float, p99: float) -> None:
    rows = [
        ("requests", "r3", 120, 50, "pass", "120 requests on r3"),
        ("error_rate", "r3", rate, 0.01, "fail" if rate > 0.01 else "pass", f"error rate {rate:.1%} on r3"),
        ("p99_ms", "r3", p99, 500, "fail" if p99 > 500 else "pass", f"p99 {p99:.0f} ms on r3"),
        ("drift", "r3", 0.04, 0.25, "pass", "worst feature PSI 0.040"),
        ("error_rate", "r2", 0.002, 0.01, "skip", "stable r2: error rate 0.2%"),
        ("p99_ms", "r2", 140.0, 500, "skip", "stable r2: p99 140 ms"),
    ]
    AnalysisCheck.objects.bulk_create(
        AnalysisCheck(
            revision=revision,
            checked_at=at,
            step=step,
            weight=weight,
            metric=metric,
            subject=subject,
            value=value,
            threshold=threshold,
            verdict=verdict,
            message=message,
        )
        for metric, subject, value, threshold, verdict, message in rows
    )


def canary_in_progress(deployment: Deployment, *, requested_by=None, strategy: dict | None = None) -> Revision:
    """r3 of ``deployment`` (whose r2 is live) rolling out as a canary: interval 1 at 20% passed, interval 2 runs
    at 50% since 20 s, its first try failed on p99 (one failure of two tolerated)."""
    now = timezone.now()
    revision = Revision.objects.create(
        deployment=deployment,
        number=3,
        model_version="2",
        status="running",
        requested_by=requested_by,
        started_at=now - timedelta(minutes=3),
        strategy=strategy_parse(strategy or CANARY).as_dict(),
        canary_weight=50,
        rollout_step=1,
        step_started_at=now - timedelta(seconds=20),
        failed_checks=1,
    )
    for position, name in enumerate(DEPLOY_STEPS):
        done = name not in ("traffic", "live")
        RevisionStep.objects.create(
            revision=revision,
            name=name,
            position=position,
            status="succeeded" if done else "running" if name == "traffic" else "pending",
            message="interval 2 of 2: 50% of traffic to the candidate for 60 s" if name == "traffic" else "",
        )
    _checks(revision, step=0, weight=20, at=now - timedelta(seconds=140), rate=0.004, p99=180.0)
    _checks(revision, step=1, weight=50, at=now - timedelta(seconds=20), rate=0.003, p99=730.0)
    return revision


def rolled_back_by_analysis(deployment: Deployment) -> Revision:
    """r3 rolled back: its error rate failed at 50% once more than tolerated."""
    revision = canary_in_progress(deployment)
    _checks(revision, step=1, weight=50, at=timezone.now(), rate=0.12, p99=210.0)
    revision.status = "rolled_back"
    revision.canary_weight = 0
    revision.error = (
        "analysis failed at 50% (3 failed intervals, 2 tolerated): error rate 12.0% on r3; rolled back to r2"
    )
    revision.save()
    revision.steps.filter(name="traffic").update(status="failed")
    return revision
