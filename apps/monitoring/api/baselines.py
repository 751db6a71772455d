"""Baselines from a window of the deployment's own traffic, over REST (the same service as the page's form)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.deployments.selectors import deployment_get
from apps.monitoring import selectors
from apps.monitoring.baselines import baseline_from_traffic
from apps.monitoring.services import baseline_restore
from apps.monitoring.types import WINDOWS, window_get

__all__ = ["DeploymentBaselineFromTrafficApi", "DeploymentBaselineRestoreApi", "DeploymentEarlierBaselinesApi"]


class DeploymentBaselineFromTrafficApi(APIView):
    """Replace the drift baseline of the deployment's model version with the profile of its own sampled traffic in
    a window: ``{"window": "24h"}`` (ending now) or ``{"window": "custom", "start": ..., "end": ...}`` (ML leads)."""

    class InputSerializer(serializers.Serializer):
        window = serializers.ChoiceField(choices=[*WINDOWS, "custom"], default="24h")
        start = serializers.CharField(required=False, allow_blank=True)
        end = serializers.CharField(required=False, allow_blank=True)

        class Meta:
            ref_name = "TrafficBaselineInput"

    class OutputSerializer(serializers.Serializer):
        model_name = serializers.CharField()
        model_version = serializers.CharField()
        source = serializers.CharField()
        rows = serializers.IntegerField()
        start = serializers.CharField(source="profile.origin.start")
        end = serializers.CharField(source="profile.origin.end")
        prediction = serializers.SerializerMethodField()

        class Meta:
            ref_name = "TrafficBaseline"

        def get_prediction(self, baseline) -> bool:
            return bool(baseline.profile.get("prediction"))

    @extend_schema(
        operation_id="deployment_baseline_from_traffic",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: OpenApiResponse(description="A bad window, or too little sampled traffic in it."),
            403: OpenApiResponse(description="Not an ML lead."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        window = window_get(
            data.validated_data["window"], start=data.validated_data.get("start"), end=data.validated_data.get("end")
        )
        baseline = baseline_from_traffic(actor=request.user, deployment=deployment, window=window)
        return Response(self.OutputSerializer(baseline).data, status=201)


class EarlierBaselineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    rows = serializers.IntegerField()
    made_at = serializers.DateTimeField()
    replaced_at = serializers.DateTimeField()

    class Meta:
        ref_name = "EarlierBaseline"


class DeploymentEarlierBaselinesApi(APIView):
    """The earlier baselines of the deployment's monitored model version (``?version=`` for another), newest
    first: what a restore can bring back."""

    @extend_schema(operation_id="deployment_baselines_earlier", responses={200: EarlierBaselineSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        version = selectors.version_to_monitor(deployment, request.query_params.get("version") or None)
        rows = selectors.earlier_baselines_get(model_name=deployment.model_name, model_version=str(version))
        return Response(EarlierBaselineSerializer(rows, many=True).data)


class DeploymentBaselineRestoreApi(APIView):
    """Make an earlier baseline of the deployment's monitored version its baseline again (ML leads; audited). The
    baseline it replaces becomes an earlier one."""

    class InputSerializer(serializers.Serializer):
        version = serializers.CharField(required=False, allow_blank=True)

        class Meta:
            ref_name = "BaselineRestoreInput"

    class OutputSerializer(serializers.Serializer):
        model_name = serializers.CharField()
        model_version = serializers.CharField()
        source = serializers.CharField()
        rows = serializers.IntegerField()

        class Meta:
            ref_name = "RestoredBaseline"

    @extend_schema(
        operation_id="deployment_baseline_restore",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            403: OpenApiResponse(description="Not an ML lead."),
            404: OpenApiResponse(description="No such earlier baseline of this version."),
        },
    )
    def post(self, request: Request, pk: int, earlier: int) -> Response:
        deployment = deployment_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = selectors.version_to_monitor(deployment, data.validated_data.get("version") or None)
        baseline = baseline_restore(
            actor=request.user, model_name=deployment.model_name, model_version=str(version), earlier_id=earlier
        )
        return Response(self.OutputSerializer(baseline).data)
