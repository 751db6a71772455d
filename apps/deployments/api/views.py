from __future__ import annotations

import json

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import IDEMPOTENCY_KEY, idempotency_key
from apps.common.errors import ApplicationError
from apps.deployments import selectors, services
from apps.deployments.api.serializers import (
    DeploymentDetailSerializer,
    DeploymentSerializer,
    EnvironmentSerializer,
    RevisionSerializer,
)
from apps.deployments.choices import InputValidation
from apps.deployments.filtersets import DeploymentFilterSet
from apps.deployments.naming import deployment_name_error
from apps.deployments.rollouts.control import rollout_control
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN


def _accepted(request: Request, revision) -> Response:
    """202: the rollout runs in the background; ``Location`` and ``url`` point at the revision to poll."""
    data = RevisionSerializer(revision, context={"request": request}).data
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class EnvironmentListApi(generics.ListAPIView):
    serializer_class = EnvironmentSerializer

    def get_queryset(self):
        return selectors.environment_list()


class DeploymentListCreateApi(generics.ListAPIView):
    """List what runs where; POST deploys a model version to an environment."""

    serializer_class = DeploymentSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeploymentFilterSet

    class DeployInputSerializer(serializers.Serializer):
        model = serializers.CharField(max_length=500)
        version = serializers.RegexField(VERSION_PATTERN, error_messages={"invalid": VERSION_MESSAGE})
        environment = serializers.CharField(max_length=63)
        name = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text="Name of the deployment's objects in the cluster (a DNS-1035 label); derived from the model "
            "name when omitted. Only on the first deploy of the model to the environment.",
        )

        input_validation = serializers.ChoiceField(
            choices=InputValidation.choices,
            required=False,
            help_text="How the scoring server checks request data against the signature: `mlflow` (default, as "
            "`mlflow models serve`) or `strict` (422 naming the column). Omitted: the deployment keeps its choice.",
        )

        strategy = serializers.JSONField(
            required=False,
            help_text='How the new revision takes traffic: `{"type": "canary", "steps": [20, 50], "step_seconds": 60, '
            '"max_error_rate": 0.01, "max_p99_ms": 500, "min_requests": 50}`, or `blue_green`, `shadow`, '
            "`all_at_once` (docs/deployments.md). Omitted keys come from the environment's default.",
        )

        def validate_name(self, value: str) -> str:
            if value and (problem := deployment_name_error(value)):
                raise serializers.ValidationError(problem)
            return value

    def get_queryset(self):
        return selectors.deployment_list()

    @extend_schema(
        operation_id="deployments_create",
        request=DeployInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: RevisionSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.DeployInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        revision = services.deployment_create(
            actor=request.user,
            model_name=data.validated_data["model"],
            model_version=data.validated_data["version"],
            environment=data.validated_data["environment"],
            idempotency_key=idempotency_key(request),
            name=data.validated_data.get("name", ""),
            input_validation=data.validated_data.get("input_validation", ""),
            strategy=data.validated_data.get("strategy"),
        )
        return _accepted(request, selectors.revision_get(pk=revision.pk))


class DeploymentDetailApi(APIView):
    @extend_schema(operation_id="deployments_retrieve", responses=DeploymentDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeploymentDetailSerializer(selectors.deployment_get(pk=pk), context={"request": request}).data)

    @extend_schema(
        operation_id="deployments_destroy",
        parameters=[IDEMPOTENCY_KEY],
        responses={202: DeploymentSerializer},
        description="Tear the deployment down in the background: 202, then poll `Location` (the deployment) "
        "until its status is `deleted`. Deleting again is a no-op.",
    )
    def delete(self, request: Request, pk: int) -> Response:
        deployment = services.deployment_delete(
            actor=request.user,
            deployment=selectors.deployment_get(pk=pk),
            idempotency_key=idempotency_key(request),
        )
        data = DeploymentSerializer(deployment, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "pattern": "^[rR]?[1-9][0-9]*$"}, {"type": "integer", "minimum": 1}],
        "example": "r3",
    }
)
class RevisionRefField(serializers.Field):
    """A deployment's revision as responses name it (``"r3"``), or its bare number (``3``, ``"3"``)."""

    def to_internal_value(self, data: object) -> int:
        try:
            return selectors.revision_number_parse(data)
        except ApplicationError as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value: int) -> str:
        return f"r{value}"


WAIT = OpenApiParameter(
    "wait",
    float,
    description="Long-poll: answer once the revision is final (`live`, `superseded`, `failed`, `rolled_back`) or "
    f"after this many seconds (at most {selectors.MAX_WAIT_SECONDS}), whichever comes first. Omitted or 0: answer "
    "at once.",
)


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= selectors.MAX_WAIT_SECONDS:  # also refuses nan
        raise serializers.ValidationError(
            {"wait": [f"Seconds to wait, between 0 and {selectors.MAX_WAIT_SECONDS}; got {raw!r}."]}
        )
    return seconds


def _revision_answer(request: Request, revision) -> Response:
    seconds = _wait_seconds(request)
    if seconds and not revision.is_final:
        revision = selectors.revision_wait(pk=revision.pk, seconds=seconds)
    return Response(RevisionSerializer(revision, context={"request": request}).data)


class DeploymentRollbackApi(APIView):
    class RollbackInputSerializer(serializers.Serializer):
        revision = RevisionRefField(
            help_text='The earlier live revision to serve again, as responses name it ("r3") or by its number (3).'
        )

    @extend_schema(
        operation_id="deployments_rollback",
        request=RollbackInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: RevisionSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.RollbackInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = selectors.deployment_get(pk=pk)
        target = selectors.revision_numbered(deployment=deployment, number=data.validated_data["revision"])
        revision = services.deployment_rollback(
            actor=request.user,
            deployment=deployment,
            to_revision=target,
            idempotency_key=idempotency_key(request),
        )
        return _accepted(request, selectors.revision_get(pk=revision.pk))


class RevisionDetailApi(APIView):
    @extend_schema(
        operation_id="revisions_retrieve",
        responses=RevisionSerializer,
        parameters=[WAIT],
        description="A revision by its API id (the `id` and `url` of every revision in responses). The same "
        "revision by the deployment's own numbering: `/api/v1/deployments/<id>/revisions/r3/`.",
    )
    def get(self, request: Request, pk: int) -> Response:
        return _revision_answer(request, selectors.revision_get(pk=pk))


class DeploymentRevisionApi(APIView):
    @extend_schema(
        operation_id="deployments_revisions_retrieve",
        responses=RevisionSerializer,
        parameters=[WAIT],
        description="A deployment's revision as pages and responses name it: `r3` (or `3`).",
    )
    def get(self, request: Request, pk: int, ref: str) -> Response:
        deployment = selectors.deployment_get(pk=pk)
        number = selectors.revision_number_parse(ref)
        revision = selectors.revision_numbered(deployment=deployment, number=number)
        return _revision_answer(request, selectors.revision_get(pk=revision.pk))


def _rollout_control_view(action: str, description: str) -> type[APIView]:
    """The API view of one rollout control (``rollouts/control.py``): POST, no body, answers the revision."""

    @extend_schema(
        operation_id=f"revisions_{action}",
        request=None,
        parameters=[IDEMPOTENCY_KEY],
        responses={200: RevisionSerializer},
        description=description,
    )
    def post(self, request: Request, pk: int) -> Response:
        idempotency_key(request)  # checked like everywhere; a repeated request is harmless by itself
        revision = rollout_control(actor=request.user, revision=selectors.revision_get(pk=pk), action=action)
        return Response(RevisionSerializer(selectors.revision_get(pk=revision.pk), context={"request": request}).data)

    return type(f"Revision{action.title()}Api", (APIView,), {"post": post, "__doc__": description})


RevisionPromoteApi = _rollout_control_view(
    "promote", "Skip the remaining analysis intervals of a rollout in progress: the candidate takes all traffic."
)
RevisionPauseApi = _rollout_control_view(
    "pause", "Hold a rollout in progress at its current weights; no interval is judged meanwhile."
)
RevisionResumeApi = _rollout_control_view("resume", "Go on with a paused rollout; its current interval starts again.")
RevisionAbortApi = _rollout_control_view(
    "abort", "Roll back now: the live revision takes all traffic again and the candidate stops."
)


class DeploymentTestApi(APIView):
    class TestInputSerializer(serializers.Serializer):
        input = serializers.JSONField(
            required=False,
            help_text="The request body for the model, in MLflow's scoring protocol (`dataframe_split`, "
            "`dataframe_records`, `instances`, `inputs`). Omitted: the model's logged input example.",
        )

    class TestOutputSerializer(serializers.Serializer):
        status = serializers.IntegerField(allow_null=True, help_text="The endpoint's HTTP status; null: no answer.")
        latency_ms = serializers.FloatField(help_text="Round trip from the control plane to the endpoint.")
        response = serializers.CharField(allow_blank=True, help_text="The answer's body (JSON pretty-printed).")
        error = serializers.CharField(allow_blank=True, help_text="Why there was no answer (timeout, unreachable).")
        request_id = serializers.CharField(help_text="The X-Request-ID sent, as the telemetry records it.")

    @extend_schema(
        operation_id="deployments_test",
        request=TestInputSerializer,
        responses={200: TestOutputSerializer},
        description="Send one request to the deployment's `/invocations` from the control plane (its "
        '"Test this endpoint" form): at most 1 MB, answered within `DEPLOY_TEST_TIMEOUT` seconds (10). '
        "The endpoint's own refusal (e.g. 422 for bad input) is a 200 here with that `status`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.TestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = selectors.deployment_get(pk=pk)
        if "input" in data.validated_data:
            body = data.validated_data["input"]
        else:
            body = selectors.input_example_get(deployment=deployment)
            if body is None:
                raise serializers.ValidationError(
                    {"input": ["The model was logged without an input example: send the request body as input."]}
                )
        answer = services.deployment_test_score(actor=request.user, deployment=deployment, body=json.dumps(body))
        return Response(
            self.TestOutputSerializer(
                {
                    "status": answer.status,
                    "latency_ms": round(answer.latency_ms, 1),
                    "response": answer.body,
                    "error": answer.error,
                    "request_id": answer.request_id,
                }
            ).data
        )
