from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.common.models import TimeStampedModel
from apps.monitoring.types import BaselineProfile

__all__ = ["Baseline", "BaselineUpload", "DriftThresholds", "EarlierBaseline"]


class Baseline(TimeStampedModel):
    """The reference distribution of a model version's inputs, the yardstick of drift."""

    class Source(models.TextChoices):
        RUN_REFERENCE = "run_reference", "Reference data of the source run"
        UPLOAD = "upload", "Uploaded file"
        TRAFFIC = "traffic", "A window of a deployment's own traffic"

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


class BaselineUpload(TimeStampedModel):
    """An uploaded baseline file too large to parse while the person waits: stored, then parsed and checked by the
    ``monitoring.baseline_upload_process`` task. Its status is what the page and the API report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Baseline replaced"
        FAILED = "failed", "Refused"

    model_name = models.CharField(max_length=500)
    model_version = models.CharField(max_length=32)
    filename = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=1000, help_text="The stored file, removed once it is parsed.")
    size = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    code = models.CharField(max_length=64, blank=True, help_text="Why it was refused (an error code), if it was.")
    error = models.TextField(blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"baseline upload {self.filename!r} of {self.model_name} v{self.model_version} ({self.status})"


class EarlierBaseline(models.Model):
    """A baseline a newer one replaced (an upload, a traffic window, a restore), kept so an ML lead can restore it.
    The newest ``services.BASELINES_KEPT`` per model version are kept."""

    model_name = models.CharField(max_length=500)
    model_version = models.CharField(max_length=32)
    source = models.CharField(max_length=32, choices=Baseline.Source.choices)
    rows = models.PositiveIntegerField(default=0)
    profile = models.JSONField(default=dict)
    made_at = models.DateTimeField(help_text="When this baseline was made (became the version's baseline).")
    replaced_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-replaced_at", "-id"]
        indexes = [models.Index(fields=["model_name", "model_version"], name="earlier_baseline_version")]

    def __str__(self) -> str:
        return f"earlier baseline of {self.model_name} v{self.model_version} ({self.made_at:%Y-%m-%d %H:%M})"


class DriftThresholds(TimeStampedModel):
    """PSI thresholds of one deployment, instead of MONITORING_PSI_WARN / MONITORING_PSI_ALERT."""

    deployment = models.OneToOneField(
        "deployments.Deployment", on_delete=models.CASCADE, related_name="drift_thresholds"
    )
    psi_warn = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(10.0)])
    psi_alert = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(10.0)])

    class Meta:
        verbose_name_plural = "drift thresholds"

    def __str__(self) -> str:
        return f"drift thresholds of {self.deployment}"

    def clean(self) -> None:
        if self.psi_warn is not None and self.psi_alert is not None and self.psi_warn >= self.psi_alert:
            raise ValidationError({"psi_alert": "The alert threshold must be above the warning threshold."})
