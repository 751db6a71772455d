from __future__ import annotations

import django_filters
from django import forms

from apps.accounts.choices import AuditSource, AuditVia
from apps.accounts.models import AuditEvent

__all__ = ["AuditEventFilterSet"]


class AuditEventFilterSet(django_filters.FilterSet):
    """Shared by the audit page, its CSV/JSON exports, and ``GET /api/v1/audit/``."""

    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Actor (username)")
    action = django_filters.CharFilter(
        lookup_expr="istartswith", label="Action, or how it starts (e.g. promotion. or api_token)"
    )
    target_type = django_filters.CharFilter(lookup_expr="iexact", label="Target type (e.g. promotion)")
    target_id = django_filters.CharFilter(label="Target id")
    source = django_filters.ChoiceFilter(choices=AuditSource.choices, label="Source", empty_label="Any source")
    via = django_filters.ChoiceFilter(choices=AuditVia.choices, label="Credential kind", empty_label="Any credential")
    since = django_filters.DateFilter(
        field_name="occurred_at",
        lookup_expr="date__gte",
        label="From date (inclusive, YYYY-MM-DD)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        field_name="occurred_at",
        lookup_expr="date__lte",
        label="To date (inclusive, YYYY-MM-DD)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target_type", "target_id", "source", "via", "since", "until"]
