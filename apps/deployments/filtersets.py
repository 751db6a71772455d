from __future__ import annotations

import django_filters

from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.deployments.choices import DeploymentStatus
from apps.deployments.models import Deployment, Environment, EnvironmentGrant


def environment_choice(field_name: str, label: str, **kwargs) -> django_filters.ModelChoiceFilter:
    """A choice of the environments there are, by name (``?environment=dev``, as the API always took)."""
    return django_filters.ModelChoiceFilter(
        field_name=field_name,
        queryset=Environment.objects.all(),
        to_field_name="name",
        label=label,
        empty_label="Any environment",
        **kwargs,
    )


class DeploymentFilterSet(django_filters.FilterSet):
    """Shared by the deployments page and ``GET /api/v1/deployments/``."""

    model = django_filters.CharFilter(field_name="model_name", lookup_expr="icontains", label="Model")
    environment = environment_choice("environment", "Environment")
    status = django_filters.ChoiceFilter(choices=DeploymentStatus.choices, empty_label="Any status")

    class Meta:
        model = Deployment
        fields = ["model", "environment", "status"]


class GrantFilterSet(django_filters.FilterSet):
    """``GET /api/v1/grants/``: grants by user, environment or role."""

    user = django_filters.CharFilter(field_name="user__username")
    environment = django_filters.CharFilter(field_name="environment__name")
    role = django_filters.ChoiceFilter(choices=Role.choices, empty_label="Any role")

    class Meta:
        model = EnvironmentGrant
        fields = ["user", "environment", "role"]


class UserAccessFilterSet(django_filters.FilterSet):
    """Shared by the access page and ``GET /api/v1/users/``: people by name, by an environment they hold a
    grant in, or by global role."""

    user = django_filters.CharFilter(field_name="username", lookup_expr="icontains", label="User")
    environment = environment_choice("environment_grants__environment", "Has a grant in", distinct=True)
    role = django_filters.ChoiceFilter(choices=Role.choices, label="Global role", empty_label="Any global role")

    class Meta:
        model = User
        fields = ["user", "environment", "role"]
