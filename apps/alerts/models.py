"""SLOs, alert rules, the alerts they raise (with their transitions) and silences."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.alerts.choices import AlertState, DriftStatistic, Metric, Severity, SloKind
from apps.common.models import TimeStampedModel

__all__ = ["Slo", "AlertRule", "Alert", "AlertTransition", "Silence"]


class Slo(TimeStampedModel):
    """A service level objective of one deployment: ``target`` share of good requests over ``period_days``.
    Good is "not answered 5xx" (availability) or "answered within ``latency_threshold_ms``" (latency)."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="slos")
    kind = models.CharField(max_length=16, choices=SloKind.choices)
    target = models.FloatField(validators=[MinValueValidator(0.5), MaxValueValidator(0.99999)])
    period_days = models.PositiveIntegerField(default=28, validators=[MinValueValidator(1), MaxValueValidator(90)])
    latency_threshold_ms = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["deployment_id", "kind", "pk"]
        verbose_name = "SLO"

    def __str__(self) -> str:
        what = (
            "availability" if self.kind == SloKind.AVAILABILITY else f"latency under {self.latency_threshold_ms:g} ms"
        )
        return f"{self.target * 100:g}% {what} over {self.period_days} d"


class AlertRule(TimeStampedModel):
    """A condition on a deployment's telemetry, evaluated every minute (``services.evaluate_all``).

    Threshold rules (error rate, latency p99, drift) compare the value over ``window_seconds`` with
    ``threshold`` and fire once it held for ``for_seconds``. ``burn_rate`` rules watch an SLO with the SRE
    workbook's window pairs (``ALERTS_BURN_RATE_WINDOWS``); their ``threshold`` is unused. The ``pending_since``,
    ``clear_since`` and ``last_*`` fields are the evaluator's memory between passes."""

    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="alert_rules")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    slo = models.ForeignKey(Slo, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    threshold = models.FloatField(null=True, blank=True)
    window_seconds = models.PositiveIntegerField(default=300)
    for_seconds = models.PositiveIntegerField(default=0)
    statistic = models.CharField(max_length=4, choices=DriftStatistic.choices, default=DriftStatistic.PSI)
    min_requests = models.PositiveIntegerField(default=0, help_text="0: ALERTS_MIN_REQUESTS.")
    min_rows = models.PositiveIntegerField(default=0, help_text="0: MONITORING_MIN_ROWS (drift rules).")
    resolve_after_seconds = models.PositiveIntegerField(default=0, help_text="0: ALERTS_RESOLVE_AFTER_SECONDS.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # the evaluator's memory
    pending_since = models.DateTimeField(null=True, blank=True)
    clear_since = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["deployment_id", "metric", "pk"]

    def __str__(self) -> str:
        if self.metric == Metric.BURN_RATE:
            return f"burn rate of SLO {self.slo}"
        return f"{self.get_metric_display()} > {self.threshold:g} over {self.window_seconds} s"


class Alert(TimeStampedModel):
    """One firing of one rule, from firing (maybe acknowledged) to resolved. At most one is open per rule."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.PAGE)
    summary = models.CharField(max_length=500)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    fired_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule"], condition=~models.Q(state="resolved"), name="one_open_alert_per_rule"
            )
        ]

    def __str__(self) -> str:
        return f"alert #{self.pk}: {self.summary}"


class AlertTransition(models.Model):
    """The history of an alert: every state it entered, when, and who moved it (None: the evaluator)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="transitions")
    state = models.CharField(max_length=16, choices=AlertState.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["pk"]  # the order they happened in (the evaluator may judge an instant in the past)


class Silence(TimeStampedModel):
    """While active (``until`` in the future), the rules it covers (one rule, or every rule of a deployment)
    do not fire: a condition that holds is recorded on the rule as silenced, and no alert is raised."""

    deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.CASCADE, related_name="silences"
    )
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    until = models.DateTimeField()
    reason = models.CharField(max_length=1000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    idempotency_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-until", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(deployment__isnull=False, rule__isnull=True)
                | models.Q(deployment__isnull=True, rule__isnull=False),
                name="silence_covers_a_deployment_or_a_rule",
            ),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_silence_idempotency_key_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"silence of {self.rule or self.deployment} until {self.until:%Y-%m-%d %H:%M}"
