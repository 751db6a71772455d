from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.common.models import TimeStampedModel
from apps.deployments.choices import DeployTarget, ImageBuilder

__all__ = ["Environment"]

dns_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "Use lowercase letters, digits and '-' (a DNS label)."
)


class Environment(TimeStampedModel):
    """Where models are served: a cluster and namespace, an image registry, defaults and policy."""

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    description = models.CharField(max_length=200, blank=True)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in lists: dev before production.")
    target = models.CharField(max_length=16, choices=DeployTarget.choices, default=DeployTarget.LOCAL)
    namespace = models.CharField(max_length=63, blank=True, validators=[dns_label])
    image_builder = models.CharField(max_length=16, choices=ImageBuilder.choices, default=ImageBuilder.LOCAL)
    image_registry = models.CharField(max_length=255, blank=True, help_text="e.g. myregistry.azurecr.io/models")
    replicas = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    cpu_request = models.CharField(max_length=16, default="250m")
    cpu_limit = models.CharField(max_length=16, default="1")
    memory_request = models.CharField(max_length=16, default="512Mi")
    memory_limit = models.CharField(max_length=16, default="1Gi")
    gated = models.BooleanField(default=False, help_text="Deploys need an executed promotion.")

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name
