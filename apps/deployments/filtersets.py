from __future__ import annotations

import django_filters

from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment


class DeploymentFilterSet(django_filters.FilterSet):
    """Shared by the deployments page and ``GET /api/v1/deployments/``."""

    model = django_filters.CharFilter(field_name="model_name", lookup_expr="icontains", label="Model")
    environment = django_filters.CharFilter(field_name="environment__name", label="Environment")
    status = django_filters.ChoiceFilter(choices=DeploymentStatus.choices)

    class Meta:
        model = Deployment
        fields = ["model", "environment", "status"]
