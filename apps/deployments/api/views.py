from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import IDEMPOTENCY_KEY, idempotency_key
from apps.common.errors import NotFoundError
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


class DeploymentRollbackApi(APIView):
    class RollbackInputSerializer(serializers.Serializer):
        revision = serializers.IntegerField(min_value=1, help_text="Number of the earlier live revision (3 for r3).")

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
        target = deployment.revisions.filter(number=data.validated_data["revision"]).first()
        if target is None:
            raise NotFoundError(f"{deployment} has no revision r{data.validated_data['revision']}.")
        revision = services.deployment_rollback(
            actor=request.user,
            deployment=deployment,
            to_revision=target,
            idempotency_key=idempotency_key(request),
        )
        return _accepted(request, selectors.revision_get(pk=revision.pk))


class RevisionDetailApi(APIView):
    @extend_schema(operation_id="revisions_retrieve", responses=RevisionSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RevisionSerializer(selectors.revision_get(pk=pk), context={"request": request}).data)
