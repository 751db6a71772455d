from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.deployments.models import AnalysisCheck, Deployment, Environment, Revision, RevisionStep
from apps.deployments.selectors import deployment_serving_health


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = [
            "name",
            "description",
            "target",
            "cluster",
            "namespace",
            "image_builder",
            "image_registry",
            "replicas",
            "gated",
            "rollout_strategy",
            "gateway",
        ]


class AnalysisCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalysisCheck
        fields = ["checked_at", "step", "weight", "metric", "subject", "value", "threshold", "verdict", "message"]


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RevisionStep
        fields = ["name", "status", "started_at", "finished_at", "message", "log"]


class RevisionSerializer(serializers.ModelSerializer):
    revision = serializers.CharField(source="label")
    deployment = serializers.IntegerField(source="deployment_id")
    model = serializers.CharField(source="deployment.model_name")
    environment = serializers.CharField(source="deployment.environment.name")
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True)
    rollback_of = serializers.CharField(source="rollback_of.label", default=None, allow_null=True)
    steps = StepSerializer(many=True)
    strategy = serializers.JSONField(
        help_text="The rollout strategy it follows (all keys, defaults filled in); {} when all at once."
    )
    canary_weight = serializers.IntegerField(help_text="Percent of the deployment's client traffic it serves now.")
    paused = serializers.SerializerMethodField()
    analysis = AnalysisCheckSerializer(many=True, source="checks.all", help_text="The stored checks, oldest first.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = [
            "id",
            "revision",
            "deployment",
            "model",
            "model_version",
            "environment",
            "kind",
            "rollback_of",
            "status",
            "image",
            "image_digest",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "attempts",
            "error",
            "steps",
            "strategy",
            "canary_weight",
            "paused",
            "analysis",
            "url",
        ]

    def get_paused(self, obj: Revision) -> bool:
        return obj.paused_at is not None

    def get_url(self, obj: Revision) -> str:
        request = self.context.get("request")
        path = reverse("deployments-api:revision_detail", kwargs={"pk": obj.pk})
        return request.build_absolute_uri(path) if request else path


class RevisionSummarySerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = [
            f
            for f in RevisionSerializer.Meta.fields
            if f not in ("steps", "deployment", "model", "environment", "analysis")
        ]


class DeploymentSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name")
    model = serializers.CharField(source="model_name")
    model_version = serializers.CharField(source="live_revision.model_version", default=None, allow_null=True)
    live_revision = serializers.CharField(source="live_revision.label", default=None, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "model",
            "model_version",
            "environment",
            "status",
            "live_revision",
            "endpoint_url",
            "created_by",
            "created_at",
            "updated_at",
            "url",
        ]

    def get_url(self, obj: Deployment) -> str:
        request = self.context.get("request")
        path = reverse("deployments-api:deployment_detail", kwargs={"pk": obj.pk})
        return request.build_absolute_uri(path) if request else path


class ServingHealthSerializer(serializers.Serializer):
    running = serializers.BooleanField(allow_null=True, help_text="null where the target does not report it")
    restarts = serializers.IntegerField(help_text="times the control plane restarted the live scoring process")
    last_restart = serializers.DateTimeField(allow_null=True)


class DeploymentDetailSerializer(DeploymentSerializer):
    revisions = RevisionSummarySerializer(many=True, source="revisions.all")
    serving = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "serving", "revisions"]

    @extend_schema_field(ServingHealthSerializer(allow_null=True))
    def get_serving(self, obj: Deployment) -> dict | None:
        """The live scoring process (the page's Endpoint card): running now, and restarts by the reconcile."""
        health = deployment_serving_health(deployment=obj)
        return ServingHealthSerializer(health).data if health else None
