from __future__ import annotations

import django_filters

from apps.events.catalogue import EVENT_CHOICES
from apps.events.choices import DeliveryStatus
from apps.events.models import Delivery


class DeliveryFilterSet(django_filters.FilterSet):
    """The Deliveries page's filters and the API's, the same."""

    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event = django_filters.ChoiceFilter(field_name="event__name", choices=EVENT_CHOICES)
    channel = django_filters.NumberFilter(field_name="channel_id")

    class Meta:
        model = Delivery
        fields = ["status", "event", "channel"]
