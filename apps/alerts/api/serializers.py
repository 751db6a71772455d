from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from apps.alerts.models import Alert, AlertRule, AlertTransition, Silence, Slo


def _absolute(context: dict, path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class SloStatusSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests over the SLO period.")
    bad = serializers.IntegerField(help_text="Of which bad: 5xx (availability) or slower than the threshold.")
    attainment = serializers.FloatField(allow_null=True, help_text="Good share over the period.")
    budget_left = serializers.FloatField(allow_null=True, help_text="Share of the error budget left (< 0: overspent).")
    burn_rate_1h = serializers.FloatField(allow_null=True, help_text="Budget burn rate over the last hour (1 = even).")
    requests_1h = serializers.IntegerField()


class SloSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id")
    environment = serializers.CharField(source="deployment.environment.name", read_only=True)
    model = serializers.CharField(source="deployment.model_name", read_only=True)

    class Meta:
        model = Slo
        fields = [
            "id",
            "deployment",
            "environment",
            "model",
            "kind",
            "target",
            "period_days",
            "latency_threshold_ms",
            "created_at",
        ]


class SloDetailSerializer(SloSerializer):
    status = SloStatusSerializer(allow_null=True, read_only=True, help_text="Null when the telemetry is unreadable.")
    status_error = serializers.CharField(read_only=True)

    class Meta(SloSerializer.Meta):
        fields = [*SloSerializer.Meta.fields, "status", "status_error"]


class AlertRuleSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id")
    slo = serializers.IntegerField(source="slo_id", allow_null=True)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "deployment",
            "metric",
            "slo",
            "threshold",
            "window_seconds",
            "for_seconds",
            "statistic",
            "min_requests",
            "min_rows",
            "resolve_after_seconds",
            "pending_since",
            "last_evaluated_at",
            "last_value",
            "last_note",
            "created_at",
        ]


class TransitionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)

    class Meta:
        model = AlertTransition
        fields = ["state", "at", "actor", "note"]


class AlertSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id")
    environment = serializers.CharField(source="deployment.environment.name")
    model = serializers.CharField(source="deployment.model_name")
    rule = serializers.IntegerField(source="rule_id")
    metric = serializers.CharField(source="rule.metric")
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "url",
            "state",
            "severity",
            "summary",
            "deployment",
            "environment",
            "model",
            "rule",
            "metric",
            "value",
            "threshold",
            "fired_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
        ]

    def get_url(self, alert: Alert) -> str:
        return _absolute(self.context, reverse("alerts-api:alert_detail", args=[alert.pk]))


class AlertDetailSerializer(AlertSerializer):
    transitions = TransitionSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "transitions"]


class SilenceSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id", allow_null=True)
    rule = serializers.IntegerField(source="rule_id", allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = Silence
        fields = ["id", "deployment", "rule", "until", "reason", "created_by", "created_at"]
