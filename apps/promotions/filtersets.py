from __future__ import annotations

import django_filters

from apps.deployments.filtersets import environment_choice
from apps.promotions.choices import PromotionStatus
from apps.promotions.models import PromotionRequest


class PromotionFilterSet(django_filters.FilterSet):
    """Shared by the promotions page and ``GET /api/v1/promotions/``."""

    status = django_filters.ChoiceFilter(choices=PromotionStatus.choices, empty_label="Any status")
    model = django_filters.CharFilter(field_name="model_name", lookup_expr="icontains", label="Model")
    environment = environment_choice("environment", "Environment")

    class Meta:
        model = PromotionRequest
        fields = ["status", "model", "environment"]
