from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.promotions.models import PromotionRequest, PromotionReview


def _absolute(context: dict, path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")

    class Meta:
        model = PromotionReview
        fields = ["reviewer", "decision", "comment", "created_at"]


class RevisionLinkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField(help_text="Poll it for the rollout's progress.")


class PromotionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_name")
    environment = serializers.CharField(source="environment.name")
    requested_by = serializers.CharField(source="requested_by.username")
    approvals = serializers.IntegerField(read_only=True, default=None, allow_null=True)
    reviews = ReviewSerializer(many=True, read_only=True)
    executed_revision = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = PromotionRequest
        fields = [
            "id",
            "model",
            "version",
            "environment",
            "justification",
            "status",
            "status_reason",
            "requested_by",
            "approvals",
            "reviews",
            "created_at",
            "updated_at",
            "decided_at",
            "executed_at",
            "executed_revision",
            "execution_error",
            "url",
        ]

    @extend_schema_field(RevisionLinkSerializer(allow_null=True))
    def get_executed_revision(self, obj: PromotionRequest) -> dict | None:
        if obj.executed_revision_id is None:
            return None
        path = reverse("deployments-api:revision_detail", kwargs={"pk": obj.executed_revision_id})
        return {"id": obj.executed_revision_id, "url": _absolute(self.context, path)}

    def get_url(self, obj: PromotionRequest) -> str:
        return _absolute(self.context, reverse("promotions-api:promotion_detail", kwargs={"pk": obj.pk}))
