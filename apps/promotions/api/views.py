from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import IDEMPOTENCY_KEY, idempotency_key
from apps.promotions import selectors, services
from apps.promotions.api.serializers import PromotionDetailSerializer, PromotionSerializer
from apps.promotions.choices import PromotionStatus
from apps.promotions.filtersets import PromotionFilterSet
from apps.registry.versions import VERSION_MESSAGE, VERSION_PATTERN


def _answer(request: Request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    data = PromotionDetailSerializer(selectors.promotion_get(pk=pk), context={"request": request}).data
    return Response(data, status=code, headers={"Location": data["url"]})


class PromotionCreateInputSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=500)
    version = serializers.RegexField(VERSION_PATTERN, error_messages={"invalid": VERSION_MESSAGE})
    environment = serializers.CharField(max_length=63, help_text="A gated environment, e.g. production.")
    justification = serializers.CharField(max_length=4000)


class PromotionListCreateApi(generics.ListAPIView):
    """Promotion requests, pending first; POST requests one."""

    serializer_class = PromotionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = PromotionFilterSet

    InputSerializer = PromotionCreateInputSerializer

    def get_queryset(self):
        return selectors.promotion_list().prefetch_related("reviews__reviewer")

    @extend_schema(operation_id="promotions_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="promotions_create",
        request=PromotionCreateInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: PromotionDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.promotion_request(
            actor=request.user,
            model_name=data.validated_data["model"],
            version=data.validated_data["version"],
            environment=data.validated_data["environment"],
            justification=data.validated_data["justification"],
            idempotency_key=idempotency_key(request),
        )
        return _answer(request, promotion.pk, status.HTTP_201_CREATED)


class PromotionDetailApi(APIView):
    @extend_schema(operation_id="promotions_retrieve", responses=PromotionDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _answer(request, pk)


class PromotionCommentSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class PromotionApproveApi(APIView):
    """Approve. When that meets the environment's policy the promotion executes: 202, the rollout started."""

    InputSerializer = PromotionCommentSerializer

    @extend_schema(
        operation_id="promotions_approve",
        request=PromotionCommentSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={200: PromotionDetailSerializer, 202: PromotionDetailSerializer},
        description="200: the approval is recorded. 202: it met the policy and the promotion executed: the rollout "
        "runs in the background; follow `executed_revision.url` for its progress.",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.promotion_approve(
            actor=request.user,
            promotion=pk,
            comment=data.validated_data["comment"],
            idempotency_key=idempotency_key(request),
        )
        started = promotion.status == PromotionStatus.EXECUTED
        return _answer(request, pk, status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK)


class PromotionRejectApi(APIView):
    InputSerializer = PromotionCommentSerializer

    @extend_schema(
        operation_id="promotions_reject",
        request=PromotionCommentSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses=PromotionDetailSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.promotion_reject(
            actor=request.user,
            promotion=pk,
            comment=data.validated_data["comment"],
            idempotency_key=idempotency_key(request),
        )
        return _answer(request, pk)


class PromotionCancelApi(APIView):
    InputSerializer = PromotionCommentSerializer

    @extend_schema(
        operation_id="promotions_cancel", request=PromotionCommentSerializer, responses=PromotionDetailSerializer
    )
    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.promotion_cancel(actor=request.user, promotion=pk, comment=data.validated_data["comment"])
        return _answer(request, pk)
