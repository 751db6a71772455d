"""Writes: SLOs and rules (ML leads), acknowledging and silencing (ML leads, audited), and the evaluator.

The evaluator (:func:`evaluate_all`) is the only writer of firing and resolved. It is safe to run twice at once
(two beat ticks overlapping, a manual ``evaluate_alerts`` during a tick): each rule's outcome is applied under a
row lock on the rule, and at most one alert per rule is open (a unique constraint), so a second pass sees the
first one's alert and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.permissions import ACKNOWLEDGE_ALERTS, CHANGE_ALERT_RULES, SILENCE_ALERTS, require
from apps.accounts.services import audit_record
from apps.alerts.choices import OPEN_STATES, AlertState, Metric, SloKind
from apps.alerts.evaluation import Decision, decide
from apps.alerts.models import Alert, AlertRule, AlertTransition, Silence, Slo
from apps.alerts.signals import alert_transitioned
from apps.common.errors import ApplicationError, ConflictError, NotFoundError
from apps.deployments.models import Deployment

__all__ = [
    "slo_create",
    "slo_delete",
    "alert_rule_create",
    "alert_rule_delete",
    "alert_acknowledge",
    "silence_create",
    "silence_active",
    "evaluate_all",
    "rule_evaluate",
    "EvaluationReport",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- SLOs and rules
def slo_create(
    *,
    actor: User,
    deployment: Deployment,
    kind: str,
    target: float,
    period_days: int = 28,
    latency_threshold_ms: float | None = None,
    min_requests: int = 0,
) -> Slo:
    """An SLO and its burn-rate alert rule (the SRE workbook's window pairs), in one transaction."""
    require(actor, CHANGE_ALERT_RULES, environment=deployment.environment)
    if kind == SloKind.LATENCY and not latency_threshold_ms:
        raise ApplicationError("A latency SLO needs latency_threshold_ms.", code="invalid", extra={})
    if kind == SloKind.AVAILABILITY:
        latency_threshold_ms = None
    slo = Slo(
        deployment=deployment,
        kind=kind,
        target=target,
        period_days=period_days,
        latency_threshold_ms=latency_threshold_ms,
        created_by=actor,
    )
    slo.full_clean()
    with transaction.atomic():
        slo.save()
        AlertRule.objects.create(
            deployment=deployment, metric=Metric.BURN_RATE, slo=slo, min_requests=min_requests, created_by=actor
        )
        audit_record(
            actor=actor,
            action="slo.create",
            target_type="slo",
            target_id=slo.pk,
            data={"deployment": deployment.pk, "kind": kind, "target": target, "period_days": period_days},
        )
    return slo


def slo_delete(*, actor: User, slo: Slo) -> None:
    """Delete an SLO with its burn-rate rule and that rule's alerts."""
    require(actor, CHANGE_ALERT_RULES, environment=slo.deployment.environment)
    with transaction.atomic():
        audit_record(actor=actor, action="slo.delete", target_type="slo", target_id=slo.pk, data={"slo": str(slo)})
        slo.delete()


def alert_rule_create(
    *,
    actor: User,
    deployment: Deployment,
    metric: str,
    threshold: float | None = None,
    window_seconds: int = 300,
    for_seconds: int = 0,
    statistic: str = "psi",
    slo: Slo | None = None,
    min_requests: int = 0,
    min_rows: int = 0,
    resolve_after_seconds: int = 0,
) -> AlertRule:
    require(actor, CHANGE_ALERT_RULES, environment=deployment.environment)
    if metric == Metric.BURN_RATE:
        if slo is None or slo.deployment_id != deployment.pk:
            raise ApplicationError("A burn_rate rule needs an SLO of the same deployment (slo).", code="invalid")
        threshold = None
    elif threshold is None:
        raise ApplicationError(f"A {metric} rule needs a threshold.", code="invalid")
    else:
        slo = None
    rule = AlertRule(
        deployment=deployment,
        metric=metric,
        slo=slo,
        threshold=threshold,
        window_seconds=window_seconds,
        for_seconds=for_seconds,
        statistic=statistic,
        min_requests=min_requests,
        min_rows=min_rows,
        resolve_after_seconds=resolve_after_seconds,
        created_by=actor,
    )
    rule.full_clean(exclude=["last_note"])
    with transaction.atomic():
        rule.save()
        audit_record(
            actor=actor,
            action="alert_rule.create",
            target_type="alert_rule",
            target_id=rule.pk,
            data={"deployment": deployment.pk, "metric": metric, "threshold": threshold, "window": window_seconds},
        )
    return rule


def alert_rule_delete(*, actor: User, rule: AlertRule) -> None:
    require(actor, CHANGE_ALERT_RULES, environment=rule.deployment.environment)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="alert_rule.delete",
            target_type="alert_rule",
            target_id=rule.pk,
            data={"rule": str(rule)},
        )
        rule.delete()


# ---------------------------------------------------------------------------- transitions
def _announce(alert: Alert, transition: str, actor: User | None = None) -> None:
    """Tell whoever listens (the events app's channels) once the transaction commits: ``alert_transitioned``."""

    def send() -> None:
        answers = alert_transitioned.send_robust(sender=Alert, alert=alert, transition=transition, actor=actor)
        for receiver, result in answers:  # a listener never breaks the evaluator or an acknowledgement
            if isinstance(result, Exception):
                logger.error("alert_transitioned receiver %r failed for alert %s: %s", receiver, alert.pk, result)

    transaction.on_commit(send)


def _transition(alert: Alert, state: str, at: datetime, *, actor: User | None = None, note: str = "") -> None:
    AlertTransition.objects.create(alert=alert, state=state, at=at, actor=actor, note=note[:1000])
    _announce(alert, {"firing": "fired"}.get(state, state), actor)


def alert_acknowledge(*, actor: User, alert: Alert | int, note: str = "") -> Alert:
    """Acknowledge a firing alert (ML leads of its environment). Acknowledging an acknowledged alert is a no-op
    (a double click, a retried call); a resolved alert cannot be acknowledged (409 ``alert_resolved``)."""
    pk = getattr(alert, "pk", alert)
    current = Alert.objects.select_related("deployment__environment").filter(pk=pk).first()
    if current is None:
        raise NotFoundError(f"Alert {pk} does not exist.")
    require(actor, ACKNOWLEDGE_ALERTS, environment=current.deployment.environment)
    now = timezone.now()
    with transaction.atomic():
        changed = Alert.objects.filter(pk=pk, state=AlertState.FIRING).update(
            state=AlertState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor, updated_at=now
        )
        current.refresh_from_db()
        if not changed:
            if current.state == AlertState.ACKNOWLEDGED:
                return current
            raise ConflictError(f"Alert {pk} is resolved; there is nothing to acknowledge.", code="alert_resolved")
        _transition(current, AlertState.ACKNOWLEDGED, now, actor=actor, note=note.strip())
        audit_record(
            actor=actor,
            action="alert.acknowledge",
            target_type="alert",
            target_id=pk,
            data={"rule": current.rule_id, "deployment": current.deployment_id, "note": note.strip()},
        )
    return current


# ---------------------------------------------------------------------------- silences
def silence_create(
    *,
    actor: User,
    until: datetime,
    reason: str,
    deployment: Deployment | None = None,
    rule: AlertRule | None = None,
    idempotency_key: str = "",
) -> Silence:
    """Silence a rule, or every rule of a deployment, until ``until`` (ML leads of its environment)."""
    from apps.deployments.services import idempotency_key_reused

    if (deployment is None) == (rule is None):
        raise ApplicationError("Silence either a deployment or a rule.", code="invalid")
    environment = (deployment or rule.deployment).environment
    require(actor, SILENCE_ALERTS, environment=environment)
    key = idempotency_key[:200]
    if key:
        used = Silence.objects.filter(created_by=actor, idempotency_key=key).first()
        if used is not None:
            same = (used.deployment_id, used.rule_id, used.until, used.reason) == (
                getattr(deployment, "pk", None),
                getattr(rule, "pk", None),
                until,
                reason.strip(),
            )
            if not same:
                raise idempotency_key_reused(key, f"silence #{used.pk}")
            return used
    if until <= timezone.now():
        raise ApplicationError("A silence must end in the future.", code="invalid_until")
    if not reason.strip():
        raise ApplicationError("Say why you silence it (reason).", code="invalid")
    with transaction.atomic():
        silence = Silence.objects.create(
            deployment=deployment, rule=rule, until=until, reason=reason.strip(), created_by=actor, idempotency_key=key
        )
        audit_record(
            actor=actor,
            action="alert.silence",
            target_type="silence",
            target_id=silence.pk,
            data={
                "deployment": getattr(deployment, "pk", None),
                "rule": getattr(rule, "pk", None),
                "until": until.isoformat(),
                "reason": silence.reason,
            },
        )
    return silence


def silence_active(rule: AlertRule, now: datetime) -> Silence | None:
    return (
        Silence.objects.filter(Q(rule=rule) | Q(deployment_id=rule.deployment_id), until__gt=now)
        .order_by("-until")
        .first()
    )


# ---------------------------------------------------------------------------- the evaluator
@dataclass
class EvaluationReport:
    """One pass: per rule id, what happened ("fired", "resolved", "firing", "pending", "clear", "silenced",
    "undecided")."""

    at: datetime
    outcomes: dict[int, str] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def _summary(rule: AlertRule, decision: Decision) -> str:
    deployment = rule.deployment
    where = f"{deployment.model_name} in {deployment.environment.name}"
    if rule.metric == Metric.BURN_RATE:
        return f"{where}: {rule.slo.get_kind_display().split(' (')[0]} SLO burning: {decision.note}"[:500]
    value = f"{decision.value:.4g}" if decision.value is not None else "?"
    extra = f" ({decision.note})" if decision.note else ""
    return f"{where}: {rule.get_metric_display()} {value} > {rule.threshold:g} over {rule.window_seconds} s{extra}"[
        :500
    ]


def rule_evaluate(rule: AlertRule, now: datetime) -> str:
    """Decide ``rule`` at ``now`` and apply the outcome: fire after ``for_seconds`` of breach (unless silenced),
    update the open alert, resolve it once the condition stayed clear for the resolve delay. A rule that cannot
    decide (too little traffic) neither fires nor keeps a pending breach; for an open alert it counts as clear."""
    decision = decide(rule, now)
    resolve_after = timedelta(seconds=rule.resolve_after_seconds or settings.ALERTS_RESOLVE_AFTER_SECONDS)
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(of=("self",))
            .select_related("deployment__environment", "slo")
            .get(pk=rule.pk)
        )
        open_alert = rule.alerts.filter(state__in=OPEN_STATES).first()
        rule.last_evaluated_at, rule.last_value = now, decision.value
        rule.last_note = decision.note[:500]
        outcome = "undecided"
        if decision.breached:
            rule.clear_since = None
            if open_alert is not None:
                open_alert.value = decision.value
                open_alert.save(update_fields=["value", "updated_at"])
                outcome = "firing"
            else:
                rule.pending_since = rule.pending_since or now
                outcome = "pending"
                if now - rule.pending_since >= timedelta(seconds=rule.for_seconds):
                    silence = silence_active(rule, now)
                    if silence is not None:
                        rule.last_note = f"Silenced until {silence.until:%Y-%m-%d %H:%M} UTC: {decision.note}"[:500]
                        outcome = "silenced"
                    else:
                        alert = Alert.objects.create(
                            rule=rule,
                            deployment=rule.deployment,
                            severity=decision.severity,
                            summary=_summary(rule, decision),
                            value=decision.value,
                            threshold=decision.threshold,
                            fired_at=now,
                        )
                        _transition(alert, AlertState.FIRING, now, note=decision.note)
                        rule.pending_since = None
                        outcome = "fired"
        else:
            rule.pending_since = None
            outcome = "clear" if decision.breached is False else "undecided"
            if open_alert is not None:
                rule.clear_since = rule.clear_since or now
                if now - rule.clear_since >= resolve_after:
                    Alert.objects.filter(pk=open_alert.pk).update(
                        state=AlertState.RESOLVED, resolved_at=now, updated_at=now
                    )
                    open_alert.state, open_alert.resolved_at = AlertState.RESOLVED, now
                    why = "the condition cleared" if decision.breached is False else "no longer decidable"
                    _transition(
                        open_alert, AlertState.RESOLVED, now, note=f"{why} for {int(resolve_after.total_seconds())} s"
                    )
                    rule.clear_since = None
                    outcome = "resolved"
            else:
                rule.clear_since = None
        rule.save()
    return outcome


def evaluate_all(*, now: datetime | None = None) -> EvaluationReport:
    """One pass over every rule of every deployment not deleted (the beat task and ``evaluate_alerts``)."""
    now = now or timezone.now()
    report = EvaluationReport(at=now)
    rules = (
        AlertRule.objects.exclude(deployment__status="deleted")
        .select_related("deployment__environment", "deployment__live_revision", "slo")
        .order_by("pk")
    )
    for rule in rules:
        report.outcomes[rule.pk] = rule_evaluate(rule, now)
    return report
