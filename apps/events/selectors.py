"""Reads of channels and deliveries, limited to what the viewer may manage (``MANAGE_CHANNELS``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.accounts.permissions import MANAGE_CHANNELS, MANAGE_GLOBAL_CHANNELS, environments_where, may, require
from apps.common.errors import NotFoundError
from apps.deployments.models import Environment
from apps.events.models import Channel, Delivery

__all__ = [
    "EventsPermissions",
    "events_permissions",
    "channel_list",
    "channel_get",
    "delivery_list",
    "delivery_get",
    "channel_environments",
]


@dataclass(frozen=True)
class EventsPermissions:
    """What the Channels and Deliveries pages offer the viewer."""

    view: bool  # may see the pages at all (admin globally or of at least one environment)
    manage_global: bool  # may add global channels


def channel_environments(user: User) -> QuerySet[Environment]:
    """The environments whose channels ``user`` manages."""
    return environments_where(user, MANAGE_CHANNELS)


def events_permissions(user: User) -> EventsPermissions:
    manage_global = may(user, MANAGE_GLOBAL_CHANNELS)
    return EventsPermissions(view=manage_global or channel_environments(user).exists(), manage_global=manage_global)


def _visible(user: User) -> Q:
    where = Q(environment__in=channel_environments(user))
    return where | Q(environment__isnull=True) if may(user, MANAGE_GLOBAL_CHANNELS) else where


def _require_some(actor: User) -> None:
    if not events_permissions(actor).view:
        require(actor, MANAGE_GLOBAL_CHANNELS, code="channels_forbidden")


def channel_list(*, actor: User) -> QuerySet[Channel]:
    """The channels ``actor`` manages; 403 ``channels_forbidden`` for someone who manages none anywhere."""
    _require_some(actor)
    return Channel.objects.select_related("environment").filter(_visible(actor))


def channel_get(*, actor: User, pk: int) -> Channel:
    channel = channel_list(actor=actor).filter(pk=pk).first()
    if channel is None:
        raise NotFoundError(f"Channel {pk} does not exist.", code="channel_not_found")
    return channel


def delivery_list(*, actor: User) -> QuerySet[Delivery]:
    """Deliveries to the channels ``actor`` manages, newest first."""
    _require_some(actor)
    channels = Channel.objects.filter(_visible(actor)).values("pk")
    return Delivery.objects.select_related("event", "channel__environment").filter(channel__in=channels)


def delivery_get(*, actor: User, pk: int) -> Delivery:
    delivery = delivery_list(actor=actor).prefetch_related("attempts").filter(pk=pk).first()
    if delivery is None:
        raise NotFoundError(f"Delivery {pk} does not exist.", code="delivery_not_found")
    return delivery
