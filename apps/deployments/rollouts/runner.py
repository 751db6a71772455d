"""The traffic step of a progressive rollout: shift traffic interval by interval, analyse each, promote or fail.

Runs inside the deploy pipeline's ``traffic`` step, under the revision's lease. Where the rollout is lives on the
revision row (``rollout_step``, ``step_started_at``, ``failed_checks``, ``canary_weight``), written at every
move, so a worker that dies mid-rollout is replaced by one that re-applies the weights of the current interval
(declarative, ``set_traffic``) and carries on from there: weights are never left without an owner, and no
interval is judged twice. A person steers it through ``control`` (promote now, abort) and ``paused_at``
(``control.py``); the loop looks at them every tick.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import requests
from django.conf import settings
from django.utils import timezone

from apps.common.errors import UnavailableError
from apps.deployments.choices import CheckVerdict, RolloutControl
from apps.deployments.models import AnalysisCheck, Revision
from apps.deployments.rollouts.analysis import Analysis, Check, analyse
from apps.deployments.rollouts.strategy import BLUE_GREEN, SHADOW, Strategy
from apps.deployments.targets import DeploymentTarget, ServingSpec, TrafficSplit
from apps.monitoring.sources.base import TelemetryError, TelemetryUnavailableError

__all__ = ["traffic_step", "RolloutFailed", "Rollout", "stable_of"]


class RolloutFailed(Exception):
    """The rollout must roll back now; the message says which check failed and by how much, or who aborted."""


def stable_of(revision: Revision) -> Revision | None:
    """The revision serving the deployment's traffic while ``revision`` rolls out (None: a first deploy)."""
    live = revision.deployment.live_revision
    return live if live is not None and live.pk != revision.pk else None


@dataclass
class Rollout:
    """What the loop works with; ``spec_of`` is the pipeline's ``serving_spec`` and ``save`` its lease-checked
    revision write (both passed in: the pipeline owns them)."""

    revision: Revision
    stable: Revision
    strategy: Strategy
    target: DeploymentTarget
    spec_of: Callable[[Revision], ServingSpec]
    save: Callable[..., None]  # save(revision, **fields): written only while the lease holds
    log: Callable[[str], None]

    @property
    def candidate_spec(self) -> ServingSpec:
        return self.spec_of(self.revision)

    @property
    def synthetic(self) -> bool:
        """Blue-green where the target cannot mirror live traffic: the runner sends the model's input example to
        the candidate itself, so that its interval has requests to judge."""
        spec = self.candidate_spec
        return (
            self.strategy.type == BLUE_GREEN and self.target.traffic_refusal(SHADOW, gateway=spec.gateway) is not None
        )

    def split(self, weight: int) -> TrafficSplit:
        return TrafficSplit(
            stable=self.spec_of(self.stable),
            candidate=self.candidate_spec,
            weight=weight,
            mirror_percent=self.strategy.mirror(),
        )


def traffic_step(rollout: Rollout) -> str:
    """Drive the rollout to its promotion. Returns what happened; raises ``RolloutFailed`` to roll back."""
    tick = settings.ROLLOUT_TICK_SECONDS
    revision, strategy, log = rollout.revision, rollout.strategy, rollout.log
    weights = strategy.weights()
    applied: tuple[int, int] | None = None  # (step, weight) this worker has set_traffic'd
    synthetic: SyntheticTraffic | bool | None = None
    next_look = None  # after a "wait" verdict, when to read the telemetry again (not at every tick)
    while True:
        revision.refresh_from_db(
            fields=["control", "control_by", "paused_at", "rollout_step", "step_started_at", "failed_checks"]
        )
        if revision.control == RolloutControl.ABORT:
            who = revision.control_by.get_username() if revision.control_by else "someone"
            raise RolloutFailed(f"aborted by {who} at {_where(revision, weights)}")
        if revision.control == RolloutControl.PROMOTE:
            who = revision.control_by.get_username() if revision.control_by else "someone"
            log(f"promoted now by {who} at {_where(revision, weights)}")
            break
        step = revision.rollout_step
        if step >= len(weights):
            break
        weight = weights[step]
        if applied != (step, weight):
            rollout.target.set_traffic(rollout.split(weight), log)
            applied = (step, weight)
            started = revision.step_started_at or timezone.now()
            rollout.save(revision, canary_weight=weight, step_started_at=started)
            log(_describe(strategy, step, weight, len(weights)))
        if revision.paused_at is not None:
            time.sleep(tick)
            continue
        now = timezone.now()
        due = revision.step_started_at + timedelta(seconds=strategy.step_seconds)
        if synthetic is None:
            synthetic = SyntheticTraffic.for_rollout(rollout) if rollout.synthetic else False
        if synthetic:
            synthetic.send(tick)
        if now < due or (next_look is not None and now < next_look):
            time.sleep(tick)
            continue
        outcome = _judge(rollout, step, weight, now)
        if outcome is not None:
            raise RolloutFailed(outcome)
        next_look = now + timedelta(seconds=max(min(strategy.step_seconds, 60) / 4, tick))
    return _promote(rollout)


class SyntheticTraffic:
    """The model's input example, sent straight to the candidate at about twice ``min_requests`` per interval."""

    def __init__(self, url: str, example: dict, per_second: float, log: Callable[[str], None]) -> None:
        self.url, self.example, self.per_second, self.log = url, example, per_second, log
        self.session = requests.Session()
        self.session.trust_env = False
        self.sent = 0
        self.failed_to_send = 0

    @classmethod
    def for_rollout(cls, rollout: Rollout) -> SyntheticTraffic | bool:
        from apps.deployments.selectors import input_example_read

        revision, strategy = rollout.revision, rollout.strategy
        example = input_example_read(revision.model_dir) if revision.model_dir else None
        if example is None:
            rollout.log("blue-green without mirroring and without an input example: no traffic to analyse")
            return False
        url = rollout.target.endpoint_url(rollout.candidate_spec).rstrip("/") + "/invocations"
        rollout.log(f"no mirroring here: sending the input example to {url} to analyse the candidate")
        return cls(url, example, max(2 * strategy.min_requests / strategy.step_seconds, 1.0), rollout.log)

    def send(self, seconds: float) -> None:
        for _ in range(max(1, round(self.per_second * seconds))):
            request_id = f"rollout-synthetic-{uuid.uuid4().hex[:12]}"
            try:
                self.session.post(self.url, json=self.example, headers={"X-Request-ID": request_id}, timeout=10)
                self.sent += 1
            except requests.RequestException as exc:
                self.failed_to_send += 1
                if self.failed_to_send in (1, 10, 100):
                    self.log(f"synthetic request could not reach the candidate: {type(exc).__name__}")


def _judge(rollout: Rollout, step: int, weight: int, now) -> str | None:
    """Analyse the interval that just ended and move on: the next interval, the same one again (waiting for
    traffic, or a tolerated failure) or a failure message (the rollout rolls back)."""
    revision, strategy, log = rollout.revision, rollout.strategy, rollout.log
    started = revision.step_started_at
    waited = (now - started).total_seconds()
    try:
        analysis = analyse(
            strategy,
            deployment=revision.deployment,
            candidate=revision.label,
            stable=rollout.stable.label,
            candidate_version=revision.model_version,
            start=started,
            end=now,
        )
    except (TelemetryError, TelemetryUnavailableError, UnavailableError) as exc:
        # The metrics could not be read: no verdict either way. Weights stay; after max_wait_seconds it fails.
        if waited >= strategy.max_wait_seconds:
            return f"analysis could not read the telemetry for {waited:.0f} s: {exc.message}"
        log(f"interval {step + 1}: could not read the telemetry ({exc.message}); trying again")
        time.sleep(max(settings.ROLLOUT_TICK_SECONDS, 1.0))
        return None
    verdict = analysis.verdict
    if verdict == CheckVerdict.WAIT and waited >= strategy.max_wait_seconds:
        verdict = CheckVerdict.FAIL
        analysis = Analysis([_timed_out(c, waited) if c.verdict == CheckVerdict.WAIT else c for c in analysis.checks])
    rollout.save(revision, updated_at=now)  # still ours (LeaseLost otherwise): an interval is judged by one worker
    _store(revision, analysis, step=step, weight=weight, at=now)
    if verdict == CheckVerdict.WAIT:
        waiting = [c.message for c in analysis.checks if c.verdict == CheckVerdict.WAIT]
        log(f"interval {step + 1}: waiting for traffic ({'; '.join(waiting)})")
        return None  # the same interval goes on, its window growing, until enough requests or max_wait_seconds
    if verdict == CheckVerdict.FAIL:
        failed = "; ".join(c.message for c in analysis.failed())
        count = revision.failed_checks + 1
        if count > strategy.max_failed_checks:
            tolerated = strategy.max_failed_checks
            return f"analysis failed at {weight}% ({count} failed intervals, {tolerated} tolerated): {failed}"
        log(f"interval {step + 1} failed ({count} of {strategy.max_failed_checks} tolerated): {failed}; trying again")
        rollout.save(revision, failed_checks=count, step_started_at=now)
        return None
    log(f"interval {step + 1} passed at {weight}%")
    rollout.save(revision, rollout_step=step + 1, step_started_at=None)
    return None


def _timed_out(check: Check, waited: float) -> Check:
    return Check(
        metric=check.metric,
        subject=check.subject,
        value=check.value,
        threshold=check.threshold,
        verdict=CheckVerdict.FAIL,
        message=f"{check.message}, still after {waited:.0f} s (max_wait_seconds)",
    )


def _store(revision: Revision, analysis: Analysis, *, step: int, weight: int, at) -> None:
    AnalysisCheck.objects.bulk_create(
        AnalysisCheck(
            revision=revision,
            checked_at=at,
            step=step,
            weight=weight,
            metric=check.metric,
            subject=check.subject,
            value=check.value,
            threshold=check.threshold,
            verdict=check.verdict,
            message=check.message[:500],
        )
        for check in analysis.checks
    )


def _promote(rollout: Rollout) -> str:
    from apps.deployments.pipeline import ready_timeout

    revision, log = rollout.revision, rollout.log
    spec = rollout.candidate_spec
    log(f"promoting {revision.label}: it takes all traffic")
    readiness = rollout.target.promote(spec, log, timeout_seconds=ready_timeout(spec))
    if not readiness.ok:
        raise RolloutFailed(f"promotion failed: {readiness.message}")
    rollout.save(revision, canary_weight=100)
    passed = AnalysisCheck.objects.filter(revision=revision).values("step").distinct().count()
    return f"promoted after {passed} analysed interval(s); {revision.label} takes all traffic"


def _where(revision: Revision, weights: list[int]) -> str:
    step = revision.rollout_step
    if step >= len(weights):
        return "the promotion"
    return f"interval {step + 1} of {len(weights)} ({weights[step]}% of traffic)"


def _describe(strategy: Strategy, step: int, weight: int, steps: int) -> str:
    if strategy.mirror():
        return (
            f"interval {step + 1} of {steps}: mirroring {strategy.mirror()}% of live traffic to the candidate "
            f"for {strategy.step_seconds} s"
        )
    return f"interval {step + 1} of {steps}: {weight}% of traffic to the candidate for {strategy.step_seconds} s"
