from __future__ import annotations

import dataclasses

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFoundError
from apps.deployments.selectors import deployment_get
from apps.monitoring import selectors, services
from apps.monitoring.types import WINDOWS, window_get

WINDOW = OpenApiParameter(
    "window", str, OpenApiParameter.QUERY, enum=list(WINDOWS), default="1h", description="How far back to look."
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
        operation_id="deployment_metrics_latency", parameters=[WINDOW], responses={200: OpenApiTypes.OBJECT, **ERRORS}
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        window = window_get(request.query_params.get("window"))
        series = selectors.latency_series_get(deployment=deployment, window=window)
        return Response(dataclasses.asdict(series))


class DeploymentDriftMetricsApi(APIView):
    """Per feature: the baseline distribution, and per time bin the production counts, PSI, Jensen-Shannon
    distance and (categorical) chi-squared p-value; features ranked by PSI over the window."""

    @extend_schema(
        operation_id="deployment_metrics_drift", parameters=[WINDOW], responses={200: OpenApiTypes.OBJECT, **ERRORS}
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = deployment_get(pk=pk)
        window = window_get(request.query_params.get("window"))
        version = selectors.monitored_version(deployment)
        if version is None:
            raise NotFoundError(f"{deployment} has no revision yet: there is no model version to compare with.")
        baseline = services.baseline_ensure(model_name=deployment.model_name, model_version=version).as_profile()
        series = selectors.drift_series_get(deployment=deployment, window=window, baseline=baseline)
        return Response(dataclasses.asdict(series))
