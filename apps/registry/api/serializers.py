from __future__ import annotations

from rest_framework import serializers

from apps.registry.links import model_api_path


class ColumnSpecSerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True)
    type = serializers.CharField()
    required = serializers.BooleanField()


class SignatureSerializer(serializers.Serializer):
    inputs = ColumnSpecSerializer(many=True)
    outputs = ColumnSpecSerializer(many=True)
    params = ColumnSpecSerializer(many=True)


class ModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    latest_version = serializers.CharField(allow_null=True)
    aliases = serializers.DictField(child=serializers.CharField(), help_text="alias -> version")
    stages = serializers.DictField(child=serializers.CharField(), help_text="legacy stage -> latest version in it")
    tags = serializers.DictField(child=serializers.CharField())
    url = serializers.SerializerMethodField()

    def get_url(self, obj) -> str:
        path = model_api_path(obj.name)
        base = self.context.get("base_url")
        return base + path if base else path


class RunSerializer(serializers.Serializer):
    run_id = serializers.CharField()
    experiment_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    metrics = serializers.DictField(child=serializers.FloatField())
    params = serializers.DictField(child=serializers.CharField())
    tags = serializers.DictField(child=serializers.CharField())
    ui_url = serializers.CharField(allow_null=True)


class VersionSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    stage = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    tags = serializers.DictField(child=serializers.CharField())
    run_id = serializers.CharField(allow_null=True)
    source = serializers.CharField()
    user = serializers.CharField()


class LiveInSerializer(serializers.Serializer):
    environment = serializers.CharField()
    deployment = serializers.IntegerField(help_text="The deployment's id (/api/v1/deployments/<id>/).")
    revision = serializers.CharField(help_text="The live revision, as pages name it (r3).")
    since = serializers.DateTimeField(allow_null=True)


class VersionListItemSerializer(VersionSerializer):
    live_in = LiveInSerializer(many=True, help_text="Where this version serves now (environment and revision).")


class VersionDetailSerializer(VersionSerializer):
    run = RunSerializer(allow_null=True)
    signature = SignatureSerializer(allow_null=True)
    signature_error = serializers.CharField(
        help_text="Why the signature is null although the version may have one (its files cannot be read)."
    )


class ComparedVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    run_id = serializers.CharField(allow_null=True)
    run_readable = serializers.BooleanField(help_text="False: the source run is missing or cannot be read.")
    live_in = LiveInSerializer(many=True, help_text="Where this version serves now.")


class ComparedMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    better = serializers.ChoiceField(["lower", "higher"], help_text="Which way this metric is better.")
    values = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="version -> value")
    best = serializers.ListField(child=serializers.CharField(), help_text="The versions with the best value.")


class ComparedParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    values = serializers.DictField(child=serializers.CharField(allow_null=True), help_text="version -> value")
    differs = serializers.BooleanField()


class VersionsComparisonSerializer(serializers.Serializer):
    model = serializers.CharField()
    versions = ComparedVersionSerializer(many=True, help_text="Oldest first.")
    metrics = ComparedMetricSerializer(many=True)
    params = ComparedParamSerializer(many=True)


def paginated(serializer: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """The list envelope, DRF's shape. MLflow pages by token and never says how many there are, so ``count``
    is always null here (counting would mean reading every page); ``next``/``previous`` work as usual."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(
                allow_null=True, help_text="Always null: the MLflow registry does not report a total."
            ),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


ModelPageSerializer = paginated(ModelSerializer, "PaginatedModelList")
VersionPageSerializer = paginated(VersionListItemSerializer, "PaginatedVersionList")
