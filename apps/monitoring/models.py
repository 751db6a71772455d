from __future__ import annotations

from django.db import models

from apps.common.models import TimeStampedModel
from apps.monitoring.types import BaselineProfile

__all__ = ["Baseline"]


class Baseline(TimeStampedModel):
    """The reference distribution of a model version's inputs, the yardstick of drift."""

    class Source(models.TextChoices):
        RUN_REFERENCE = "run_reference", "Reference data of the source run"

    model_name = models.CharField(max_length=500)
    model_version = models.CharField(max_length=32)
    source = models.CharField(max_length=32, choices=Source.choices, default=Source.RUN_REFERENCE)
    rows = models.PositiveIntegerField(default=0)
    profile = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_name", "model_version"], name="one_baseline_per_model_version")
        ]

    def __str__(self) -> str:
        return f"baseline of {self.model_name} v{self.model_version}"

    def as_profile(self) -> BaselineProfile:
        return BaselineProfile.from_json(
            model_name=self.model_name, model_version=self.model_version, data=self.profile
        )
