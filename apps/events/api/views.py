from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import IDEMPOTENCY_KEY, idempotency_key
from apps.common.paging import Pagination
from apps.events import selectors, services
from apps.events.api.serializers import (
    ChannelCreateInputSerializer,
    ChannelSerializer,
    ChannelUpdateInputSerializer,
    DeliveryDetailSerializer,
    DeliverySerializer,
)
from apps.events.filtersets import DeliveryFilterSet
from apps.events.models import Channel, Delivery


def _channel(request: Request, pk: int, code: int = status.HTTP_200_OK) -> Response:
    return Response(ChannelSerializer(selectors.channel_get(actor=request.user, pk=pk)).data, status=code)


class ChannelListCreateApi(generics.ListAPIView):
    """Notification channels the caller manages (admins: global ones and their environments'). POST adds one;
    ``url`` and ``secret`` are write-only."""

    serializer_class = ChannelSerializer
    pagination_class = Pagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Channel.objects.none()
        return selectors.channel_list(actor=self.request.user)

    @extend_schema(operation_id="channels_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="channels_create", request=ChannelCreateInputSerializer, responses={201: ChannelSerializer}
    )
    def post(self, request: Request) -> Response:
        data = ChannelCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_create(actor=request.user, **data.validated_data)
        return _channel(request, channel.pk, status.HTTP_201_CREATED)


class ChannelDetailApi(APIView):
    @extend_schema(operation_id="channels_retrieve", responses=ChannelSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _channel(request, pk)

    @extend_schema(
        operation_id="channels_partial_update", request=ChannelUpdateInputSerializer, responses=ChannelSerializer
    )
    def patch(self, request: Request, pk: int) -> Response:
        channel = selectors.channel_get(actor=request.user, pk=pk)
        data = ChannelUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.channel_update(actor=request.user, channel=channel, **data.validated_data)
        return _channel(request, pk)

    @extend_schema(operation_id="channels_destroy", responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.channel_delete(actor=request.user, channel=selectors.channel_get(actor=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListApi(generics.ListAPIView):
    """Deliveries to the channels the caller manages, newest first; filter by status, event, channel."""

    serializer_class = DeliverySerializer
    pagination_class = Pagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = DeliveryFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Delivery.objects.none()
        return selectors.delivery_list(actor=self.request.user)

    @extend_schema(operation_id="deliveries_list")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class DeliveryDetailApi(APIView):
    @extend_schema(operation_id="deliveries_retrieve", responses=DeliveryDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DeliveryDetailSerializer(selectors.delivery_get(actor=request.user, pk=pk)).data)


class DeliveryResendApi(APIView):
    """Send the delivery's event to its channel again, as a new delivery: 202, the attempt runs in the background."""

    @extend_schema(
        operation_id="deliveries_resend",
        request=None,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: DeliveryDetailSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        delivery = selectors.delivery_get(actor=request.user, pk=pk)
        resent = services.delivery_resend(
            actor=request.user, delivery=delivery, idempotency_key=idempotency_key(request)
        )
        data = DeliveryDetailSerializer(selectors.delivery_get(actor=request.user, pk=resent.pk)).data
        return Response(data, status=status.HTTP_202_ACCEPTED)
