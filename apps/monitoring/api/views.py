from __future__ import annotations

import dataclasses

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import IF_MATCH
from apps.common.parsers import JSONParser
from apps.deployments.selectors import deployment_get
from apps.monitoring import selectors, services, uploads
from apps.monitoring.models import BaselineUpload
from apps.monitoring.types import WINDOWS, window_get
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN

WINDOW = OpenApiParameter(
    "window",
    str,
    OpenApiParameter.QUERY,
    enum=[*WINDOWS, "custom"],
    default="1h",
    description="How far back to look; custom: between start and end.",
)
START = OpenApiParameter(
    "start", str, OpenApiParameter.QUERY, description="custom window: ISO 8601 start (UTC if no offset)"
)
END = OpenApiParameter(
    "end", str, OpenApiParameter.QUERY, description="custom window: ISO 8601 end, at most 31 days later"
)
ERRORS = {
    400: OpenApiResponse(description="Unknown window."),
    404: OpenApiResponse(description="No such deployment, or no reference data for drift."),
    502: OpenApiResponse(description="The telemetry store answered with an error."),
    503: OpenApiResponse(description="The telemetry store cannot be reached."),
}


class DeploymentLatencyMetricsApi(APIView):
    """Latency p50/p95/p99 (ms), requests per second and error rate per time bin, with the revision per bin."""

    @extend_schema(
        operation_id="deployment_metrics_latency",
        parameters=[WINDOW, START, END],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        window = window_get(
            request.query_params.get("window"),
            start=request.query_params.get("start"),
            end=request.query_params.get("end"),
        )
        series = selectors.latency_series_get(deployment=deployment, window=window)
        return Response(dataclasses.asdict(series))


class DeploymentDriftMetricsApi(APIView):
    """Per feature: the baseline distribution, and per time bin the production counts, PSI, Jensen-Shannon
    distance and (categorical) chi-squared p-value; features ranked by PSI over the window."""

    @extend_schema(
        operation_id="deployment_metrics_drift",
        parameters=[WINDOW, START, END],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        window = window_get(
            request.query_params.get("window"),
            start=request.query_params.get("start"),
            end=request.query_params.get("end"),
        )
        series = selectors.deployment_drift_get(deployment=deployment, window=window)
        return Response(dataclasses.asdict(series))


class DeploymentDriftThresholdsApi(APIView):
    """The PSI thresholds of a deployment's drift levels (GET); PUT sets them (ML leads)."""

    class InputSerializer(serializers.Serializer):
        psi_warn = serializers.FloatField(min_value=0, max_value=10)
        psi_alert = serializers.FloatField(min_value=0, max_value=10)

        class Meta:
            ref_name = "DriftThresholdsInput"

    class OutputSerializer(serializers.Serializer):
        psi_warn = serializers.FloatField()
        psi_alert = serializers.FloatField()

        class Meta:
            ref_name = "DriftThresholds"

    def _answer(self, deployment) -> Response:
        warn, alert = selectors.drift_thresholds_get(deployment=deployment)
        return Response(
            self.OutputSerializer({"psi_warn": warn, "psi_alert": alert}).data,
            headers={"ETag": selectors.drift_thresholds_etag(deployment=deployment)},
        )

    @extend_schema(operation_id="deployment_drift_thresholds", responses={200: OutputSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return self._answer(deployment_get(pk=pk))

    @extend_schema(
        operation_id="deployment_drift_thresholds_set",
        request=InputSerializer,
        parameters=[IF_MATCH],
        responses={200: OutputSerializer, 400: OpenApiResponse(description="Invalid thresholds.")},
    )
    def put(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.drift_thresholds_set(
            actor=request.user,
            deployment=deployment,
            if_match=request.headers.get("If-Match"),
            **data.validated_data,
        )
        return self._answer(deployment)


class BaselineUploadStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    filename = serializers.CharField()
    size = serializers.IntegerField()
    status = serializers.CharField()
    code = serializers.CharField()
    error = serializers.CharField()
    rows = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "BaselineUploadStatus"

    def get_url(self, upload) -> str:
        path = reverse("monitoring-api:baseline_upload_status", kwargs={"pk": upload.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class BaselineUploadStatusApi(APIView):
    """How a baseline upload parsed by a worker is doing: queued, processing, done (the baseline replaced, ``rows``
    profiled) or failed (``code`` and ``error`` say why, as an inline upload's refusal would)."""

    @extend_schema(operation_id="baseline_upload_status", responses={200: BaselineUploadStatusSerializer})
    def get(self, request: Request, pk: int) -> Response:
        upload = selectors.baseline_upload_get(pk=pk)
        return Response(BaselineUploadStatusSerializer(upload, context={"request": request}).data)


class DeploymentBaselineUploadApi(APIView):
    """Replace the drift baseline of the deployment's model version (or ``version``) with the profile of a
    CSV (with a header row) or Parquet file sent as multipart field ``file`` (ML leads)."""

    parser_classes = [MultiPartParser, JSONParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        version = serializers.RegexField(VERSION_PATTERN, required=False, error_messages={"invalid": VERSION_MESSAGE})

        class Meta:
            ref_name = "BaselineUpload"

    class OutputSerializer(serializers.Serializer):
        model_name = serializers.CharField()
        model_version = serializers.CharField()
        source = serializers.CharField()
        rows = serializers.IntegerField()
        features = serializers.IntegerField(source="feature_count")

        class Meta:
            ref_name = "Baseline"

    @extend_schema(
        operation_id="deployment_baseline_upload",
        request={"multipart/form-data": InputSerializer},
        responses={
            201: OutputSerializer,
            202: OpenApiResponse(
                response=BaselineUploadStatusSerializer,
                description="A file larger than MONITORING_BASELINE_INLINE_BYTES: stored and parsed by a worker; poll "
                "``url`` for how it ended (the same refusals as an inline upload, in ``code`` and ``error``).",
            ),
            **ERRORS,
            413: OpenApiResponse(
                description="The file is larger than MONITORING_BASELINE_MAX_UPLOAD_BYTES, or decodes to more than "
                "MONITORING_BASELINE_MAX_ROWS rows or MONITORING_BASELINE_MAX_DECODED_BYTES."
            ),
            415: OpenApiResponse(description="The file is neither CSV text nor Parquet (by its content)."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        baseline = services.baseline_upload(
            actor=request.user,
            model_name=deployment.model_name,
            model_version=selectors.version_to_monitor(deployment, data.validated_data.get("version")),
            data=upload.read(uploads.max_upload_bytes() + 1),
            filename=upload.name or "",
        )
        if isinstance(baseline, BaselineUpload):  # parsed by a worker
            body = BaselineUploadStatusSerializer(baseline, context={"request": request}).data
            return Response(body, status=202, headers={"Location": body["url"]})
        baseline.feature_count = len(baseline.profile.get("features", []))
        return Response(self.OutputSerializer(baseline).data, status=201)
