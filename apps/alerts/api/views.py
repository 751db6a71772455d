from __future__ import annotations

from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts import selectors, services
from apps.alerts.api.serializers import (
    AlertDetailSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    SilenceSerializer,
    SloDetailSerializer,
    SloSerializer,
)
from apps.alerts.choices import DriftStatistic, Metric, SloKind
from apps.alerts.evaluation import slo_status
from apps.alerts.filtersets import AlertFilterSet
from apps.common.api import IDEMPOTENCY_KEY, idempotency_key
from apps.common.errors import ApplicationError
from apps.deployments.selectors import deployment_get

DEPLOYMENT = OpenApiParameter("deployment", int, OpenApiParameter.QUERY, description="Only this deployment's.")


def _by_deployment(request: Request, queryset):
    value = request.query_params.get("deployment")
    if value in (None, ""):
        return queryset
    if not value.isdigit():
        raise serializers.ValidationError({"deployment": ["A deployment id (an integer)."]})
    return queryset.filter(deployment_id=int(value))


# ---------------------------------------------------------------------------- SLOs
class SloListCreateApi(generics.ListAPIView):
    """SLOs of every deployment; POST adds one (ML leads of its environment), with its burn-rate alert rule."""

    serializer_class = SloSerializer

    class InputSerializer(serializers.Serializer):
        deployment = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=SloKind.choices)
        target = serializers.FloatField(min_value=0.5, max_value=0.99999, help_text="e.g. 0.995 for 99.5%.")
        period_days = serializers.IntegerField(min_value=1, max_value=90, default=28)
        latency_threshold_ms = serializers.FloatField(min_value=0, required=False, allow_null=True, default=None)
        min_requests = serializers.IntegerField(min_value=0, default=0, help_text="0: ALERTS_MIN_REQUESTS.")

        class Meta:
            ref_name = "SloInput"

    def get_queryset(self):
        return _by_deployment(self.request, selectors.slo_list())

    @extend_schema(operation_id="slos_list", parameters=[DEPLOYMENT])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="slos_create", request=InputSerializer, responses={201: SloSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        deployment = deployment_get(pk=values.pop("deployment"))
        slo = services.slo_create(actor=request.user, deployment=deployment, **values)
        return Response(SloSerializer(selectors.slo_get(pk=slo.pk)).data, status=status.HTTP_201_CREATED)


class SloDetailApi(APIView):
    @extend_schema(
        operation_id="slos_retrieve",
        responses=SloDetailSerializer,
        description="The SLO with its status now: attainment and error budget left over its period, burn rate over "
        "the last hour (one telemetry read).",
    )
    def get(self, request: Request, pk: int) -> Response:
        slo = selectors.slo_get(pk=pk)
        try:
            slo.status, slo.status_error = slo_status(slo, now=timezone.now()), ""
        except ApplicationError as exc:
            slo.status, slo.status_error = None, exc.message
        return Response(SloDetailSerializer(slo).data)

    @extend_schema(operation_id="slos_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.slo_delete(actor=request.user, slo=selectors.slo_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------- rules
class AlertRuleListCreateApi(generics.ListAPIView):
    """Alert rules; POST adds one (ML leads of the deployment's environment)."""

    serializer_class = AlertRuleSerializer

    class InputSerializer(serializers.Serializer):
        deployment = serializers.IntegerField()
        metric = serializers.ChoiceField(choices=Metric.choices)
        threshold = serializers.FloatField(
            required=False, allow_null=True, default=None, help_text="Required except for burn_rate."
        )
        slo = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="burn_rate only.")
        window_seconds = serializers.IntegerField(min_value=60, max_value=31 * 86400, default=300)
        for_seconds = serializers.IntegerField(min_value=0, max_value=86400, default=0)
        statistic = serializers.ChoiceField(choices=DriftStatistic.choices, default=DriftStatistic.PSI)
        min_requests = serializers.IntegerField(min_value=0, default=0)
        min_rows = serializers.IntegerField(min_value=0, default=0)
        resolve_after_seconds = serializers.IntegerField(min_value=0, max_value=86400, default=0)

        class Meta:
            ref_name = "AlertRuleInput"

    def get_queryset(self):
        return _by_deployment(self.request, selectors.rule_list())

    @extend_schema(operation_id="alert_rules_list", parameters=[DEPLOYMENT])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="alert_rules_create", request=InputSerializer, responses={201: AlertRuleSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        deployment = deployment_get(pk=values.pop("deployment"))
        slo_id = values.pop("slo")
        slo = selectors.slo_get(pk=slo_id) if slo_id else None
        rule = services.alert_rule_create(actor=request.user, deployment=deployment, slo=slo, **values)
        return Response(AlertRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(APIView):
    @extend_schema(operation_id="alert_rules_retrieve", responses=AlertRuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AlertRuleSerializer(selectors.rule_get(pk=pk)).data)

    @extend_schema(operation_id="alert_rules_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.alert_rule_delete(actor=request.user, rule=selectors.rule_get(pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------- alerts
class AlertListApi(generics.ListAPIView):
    """Alerts, firing first, then acknowledged, then resolved; filter by state, environment, model, deployment."""

    serializer_class = AlertSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = AlertFilterSet

    def get_queryset(self):
        return selectors.alert_list()

    @extend_schema(operation_id="alerts_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class AlertDetailApi(APIView):
    @extend_schema(operation_id="alerts_retrieve", responses=AlertDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AlertDetailSerializer(selectors.alert_get(pk=pk), context={"request": request}).data)


class AlertAcknowledgeApi(APIView):
    """Acknowledge a firing alert (ML leads of its environment). Again: a no-op; a resolved alert: 409."""

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")

        class Meta:
            ref_name = "AlertAcknowledgeInput"

    @extend_schema(
        operation_id="alerts_ack",
        request=InputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses=AlertDetailSerializer,
        description="Acknowledging is idempotent by nature: a retry (with or without the same Idempotency-Key) "
        "answers the acknowledged alert and records nothing new.",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        idempotency_key(request)  # validated like everywhere; the acknowledgement itself cannot repeat
        services.alert_acknowledge(actor=request.user, alert=pk, note=data.validated_data["note"])
        return Response(AlertDetailSerializer(selectors.alert_get(pk=pk), context={"request": request}).data)


# ---------------------------------------------------------------------------- silences
class SilenceListCreateApi(generics.ListAPIView):
    """Silences (``?active=true``: only those in force); POST silences a deployment or one rule until a time."""

    serializer_class = SilenceSerializer

    class InputSerializer(serializers.Serializer):
        deployment = serializers.IntegerField(required=False, allow_null=True, default=None)
        rule = serializers.IntegerField(required=False, allow_null=True, default=None)
        until = serializers.DateTimeField()
        reason = serializers.CharField(max_length=1000)

        class Meta:
            ref_name = "SilenceInput"

        def validate(self, attrs):
            if (attrs["deployment"] is None) == (attrs["rule"] is None):
                raise serializers.ValidationError("Give either deployment or rule.")
            return attrs

    def get_queryset(self):
        active = self.request.query_params.get("active") in ("1", "true")
        return selectors.silence_list(active_only=active)

    @extend_schema(
        operation_id="silences_list",
        parameters=[OpenApiParameter("active", bool, OpenApiParameter.QUERY, description="Only silences in force.")],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="silences_create",
        request=InputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: SilenceSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        silence = services.silence_create(
            actor=request.user,
            deployment=deployment_get(pk=values["deployment"]) if values["deployment"] else None,
            rule=selectors.rule_get(pk=values["rule"]) if values["rule"] else None,
            until=values["until"],
            reason=values["reason"],
            idempotency_key=idempotency_key(request),
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)
