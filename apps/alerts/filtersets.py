from __future__ import annotations

import django_filters

from apps.alerts.choices import AlertState
from apps.alerts.models import Alert
from apps.deployments.filtersets import environment_choice


class AlertFilterSet(django_filters.FilterSet):
    """Shared by the Alerts page and ``GET /api/v1/alerts/``."""

    state = django_filters.ChoiceFilter(choices=AlertState.choices, empty_label="Any state")
    environment = environment_choice("deployment__environment", "Environment")
    model = django_filters.CharFilter(field_name="deployment__model_name", lookup_expr="icontains", label="Model")
    deployment = django_filters.NumberFilter(field_name="deployment_id", label="Deployment id")

    class Meta:
        model = Alert
        fields = ["state", "environment", "model", "deployment"]
