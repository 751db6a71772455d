from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.promotions.models import PromotionRequest, PromotionReview
from apps.promotions.selectors import promotion_live_get


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


class ComparisonMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    candidate = serializers.FloatField(allow_null=True)
    live = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True, help_text="candidate - live")
    better = serializers.ChoiceField(["lower", "higher"], help_text="Which way this metric is better.")
    verdict = serializers.ChoiceField(
        ["better", "worse", "same"], allow_null=True, help_text="null: a side is missing."
    )


class ComparisonChangeSerializer(serializers.Serializer):
    name = serializers.CharField()
    change = serializers.ChoiceField(["added", "removed", "changed", "retyped"])
    before = serializers.CharField(allow_null=True)
    after = serializers.CharField(allow_null=True)


class ComparisonRevisionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    since = serializers.DateTimeField(allow_null=True)


class ComparisonSerializer(serializers.Serializer):
    """What the request compared when it was made (``apps/promotions/comparison.py``); it never changes."""

    format = serializers.IntegerField()
    taken_at = serializers.DateTimeField()
    candidate_version = serializers.CharField()
    live_version = serializers.CharField(allow_null=True, help_text="What the environment served then; null: none.")
    live_from = serializers.ChoiceField(
        ["revision", "alias", ""],
        help_text="revision: its live revision; alias: the environment's alias (nothing was deployed).",
    )
    live_revision = ComparisonRevisionSerializer(allow_null=True)
    metrics = ComparisonMetricSerializer(many=True)
    params = ComparisonChangeSerializer(many=True)
    signature = ComparisonChangeSerializer(many=True, help_text="Signature inputs added, removed or retyped.")
    notes = serializers.ListField(child=serializers.CharField(), help_text="What could not be read then.")


class LiveNowSerializer(serializers.Serializer):
    version = serializers.CharField(allow_null=True, help_text="The version live in the environment now; null: none.")
    revision = RevisionLinkSerializer(allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    rolling_out = RevisionLinkSerializer(allow_null=True, help_text="A rollout of the model there not finished yet.")
    alias = serializers.CharField()
    alias_version = serializers.CharField(allow_null=True)
    alias_error = serializers.CharField(help_text="Why alias_version is unknown (the registry cannot be read).")


class PromotionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_name")
    environment = serializers.CharField(source="environment.name")
    requested_by = serializers.CharField(source="requested_by.username")
    approvals = serializers.IntegerField(read_only=True, default=None, allow_null=True)
    reviews = ReviewSerializer(many=True, read_only=True)
    executed_revision = serializers.SerializerMethodField()
    comparison = serializers.SerializerMethodField(
        help_text="What was compared when the request was made, kept for ever; null for requests made before "
        "requests kept it."
    )
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
            "comparison",
            "url",
        ]

    @extend_schema_field(RevisionLinkSerializer(allow_null=True))
    def get_executed_revision(self, obj: PromotionRequest) -> dict | None:
        if obj.executed_revision_id is None:
            return None
        path = reverse("deployments-api:revision_detail", kwargs={"pk": obj.executed_revision_id})
        return {"id": obj.executed_revision_id, "url": _absolute(self.context, path)}

    @extend_schema_field(ComparisonSerializer(allow_null=True))
    def get_comparison(self, obj: PromotionRequest) -> dict | None:
        return obj.comparison or None

    def get_url(self, obj: PromotionRequest) -> str:
        return _absolute(self.context, reverse("promotions-api:promotion_detail", kwargs={"pk": obj.pk}))


class PromotionDetailSerializer(PromotionSerializer):
    live_now = serializers.SerializerMethodField(help_text="What the environment serves of the model now.")

    class Meta(PromotionSerializer.Meta):
        fields = [*PromotionSerializer.Meta.fields, "live_now"]

    @extend_schema_field(LiveNowSerializer)
    def get_live_now(self, obj: PromotionRequest) -> dict:
        live = promotion_live_get(promotion=obj)
        return {
            "version": live.revision.model_version if live.revision else None,
            "revision": self._revision(live.revision),
            "since": live.since,
            "rolling_out": self._revision(live.rolling_out),
            "alias": live.alias,
            "alias_version": live.alias_version,
            "alias_error": live.alias_error,
        }

    def _revision(self, revision) -> dict | None:
        if revision is None:
            return None
        path = reverse("deployments-api:revision_detail", kwargs={"pk": revision.pk})
        return {"id": revision.pk, "url": _absolute(self.context, path)}
