from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.accounts.choices import Role
from apps.common.models import TimeStampedModel
from apps.deployments.choices import (
    CheckVerdict,
    DeploymentStatus,
    DeployTargetName,
    ImageBuilderName,
    RevisionKind,
    RevisionStatus,
    RolloutControl,
    StepName,
    StepStatus,
)
from apps.deployments.clusters import cluster_refusal
from apps.deployments.naming import deployment_name_error, image_repository_error
from apps.deployments.quantities import resources_errors

__all__ = ["Environment", "EnvironmentGrant", "Deployment", "Revision", "RevisionStep", "AnalysisCheck"]

dns_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "Use lowercase letters, digits and '-' (a DNS label)."
)


class Environment(TimeStampedModel):
    """Where models are served: a cluster and namespace, an image registry, defaults and policy."""

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    description = models.CharField(max_length=200, blank=True)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in lists: dev before production.")
    target = models.CharField(max_length=16, choices=DeployTargetName.choices, default=DeployTargetName.LOCAL)
    namespace = models.CharField(max_length=63, blank=True, validators=[dns_label])
    cluster = models.CharField(
        max_length=63,
        blank=True,
        help_text="The Kubernetes cluster, by its name in the settings (KUBERNETES_CLUSTERS); blank: the default.",
    )
    image_builder = models.CharField(max_length=16, choices=ImageBuilderName.choices, default=ImageBuilderName.NONE)
    image_registry = models.CharField(max_length=255, blank=True, help_text="e.g. myregistry.azurecr.io/models")
    replicas = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    min_replicas = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    max_replicas = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    cpu_request = models.CharField(max_length=16, default="250m")
    cpu_limit = models.CharField(max_length=16, default="1")
    memory_request = models.CharField(max_length=16, default="512Mi")
    memory_limit = models.CharField(max_length=16, default="1Gi")
    gated = models.BooleanField(default=False, help_text="Deploys need an executed promotion.")
    rollout_strategy = models.JSONField(
        default=dict,
        blank=True,
        help_text='Default rollout strategy of deploys here, e.g. {"type": "canary", "steps": [20, 50]} '
        "(docs/deployments.md); empty: all at once.",
    )
    gateway = models.CharField(
        max_length=253,
        blank=True,
        help_text="Kubernetes: the Gateway API Gateway (namespace/name) the deployments' HTTPRoutes attach to. "
        "Blank: no Gateway API; canary by replica ratios (approximate), no shadow.",
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.target == DeployTargetName.KUBERNETES and self.image_builder == ImageBuilderName.NONE:
            errors["image_builder"] = "A Kubernetes environment needs an image builder: clusters run images."
        if self.image_builder != ImageBuilderName.NONE and not self.image_registry:
            errors["image_registry"] = "Say where images are pushed, e.g. myregistry.azurecr.io/models."
        if self.target == DeployTargetName.KUBERNETES and not self.namespace:
            errors["namespace"] = "A Kubernetes environment needs a namespace."
        if self.cluster and self.target != DeployTargetName.KUBERNETES:
            errors["cluster"] = "Only a Kubernetes environment has a cluster."
        elif problem := cluster_refusal(self.cluster):
            errors["cluster"] = problem
        if self.min_replicas > self.max_replicas:
            errors["max_replicas"] = "The autoscaling maximum must be at least the minimum."
        if self.image_registry and (problem := image_repository_error(self.image_registry.rstrip("/"))):
            errors["image_registry"] = problem
        errors |= resources_errors(
            cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit,
            memory_request=self.memory_request,
            memory_limit=self.memory_limit,
        )
        if errors:
            raise ValidationError(errors)


class EnvironmentGrant(models.Model):
    """A role someone holds in one environment, on top of their global role (``User.role``).

    ``source`` keeps grants set by an admin apart from those an SSO login derives from group claims,
    so that a login only ever replaces the latter.
    """

    class Source(models.TextChoices):
        MANUAL = "manual", "Granted by an admin"
        SSO = "sso", "From SSO group claims"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="environment_grants")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=16, choices=Role.choices)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.MANUAL)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["environment__order", "environment__name", "user__username", "role"]
        constraints = [
            models.UniqueConstraint(fields=["user", "environment", "role"], name="one_grant_per_role_and_environment")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.environment}"


class Deployment(TimeStampedModel):
    """One registered model served in one environment. Its revisions are the rollouts."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    model_name = models.CharField(max_length=500)
    name = models.CharField(max_length=63, validators=[dns_label], help_text="Resource name in the target.")
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    live_revision = models.ForeignKey("Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    endpoint_url = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Who asked for the tear-down, and the Idempotency-Key they sent (a retried DELETE answers the same).
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delete_idempotency_key = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["environment__order", "model_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["deleted_by", "delete_idempotency_key"],
                condition=~models.Q(delete_idempotency_key=""),
                name="unique_delete_idempotency_key_per_user",
            ),
            models.UniqueConstraint(
                fields=["environment", "model_name"],
                condition=~models.Q(status="deleted"),
                name="one_active_deployment_per_model_and_environment",
            ),
            models.UniqueConstraint(
                fields=["environment", "name"],
                condition=~models.Q(status="deleted"),
                name="unique_active_resource_name",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} in {self.environment}"

    def clean(self) -> None:
        # The name also names a Service, so it must be a DNS-1035 label (naming.py), stricter than dns_label.
        if problem := deployment_name_error(self.name):
            raise ValidationError({"name": problem})


class Revision(TimeStampedModel):
    """One rollout of one model version with one image and one configuration."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=RevisionKind.choices, default=RevisionKind.DEPLOY)
    model_version = models.CharField(max_length=32)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=RevisionStatus.choices, default=RevisionStatus.QUEUED)
    image = models.CharField(max_length=500, blank=True)
    image_digest = models.CharField(max_length=80, blank=True)
    context_digest = models.CharField(max_length=80, blank=True)
    model_dir = models.CharField(max_length=1000, blank=True)
    config = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    idempotency_key = models.CharField(max_length=200, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A worker owns the revision until then.")
    publish_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="Its task could not be sent (broker down); the next requeue sends it."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Progressive delivery (rollouts/): the plan, and where the rollout is in it.
    strategy = models.JSONField(default=dict, blank=True, help_text="Strategy.as_dict(); empty: all at once.")
    canary_weight = models.PositiveSmallIntegerField(default=0, help_text="Percent of client traffic it serves now.")
    rollout_step = models.PositiveSmallIntegerField(default=0, help_text="Index of the current analysis interval.")
    step_started_at = models.DateTimeField(null=True, blank=True)
    failed_checks = models.PositiveSmallIntegerField(default=0, help_text="Failed intervals so far.")
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    control = models.CharField(max_length=16, choices=RolloutControl.choices, blank=True)
    control_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "number"], name="unique_revision_number"),
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_idempotency_key_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} r{self.number}"

    @property
    def label(self) -> str:
        return f"r{self.number}"

    @property
    def is_final(self) -> bool:
        return self.status in RevisionStatus.final()


class RevisionStep(models.Model):
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=16, choices=StepName.choices)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    log = models.TextField(blank=True)

    class Meta:
        ordering = ["revision", "position"]
        constraints = [models.UniqueConstraint(fields=["revision", "name"], name="unique_step_per_revision")]

    def __str__(self) -> str:
        return f"{self.revision} {self.name}: {self.status}"


class AnalysisCheck(models.Model):
    """One metric of one analysis interval of a progressive rollout, as judged then."""

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="checks")
    checked_at = models.DateTimeField()
    step = models.PositiveSmallIntegerField(help_text="Index of the analysis interval.")
    weight = models.PositiveSmallIntegerField(help_text="The candidate's percent of client traffic then.")
    metric = models.CharField(max_length=32)  # requests, error_rate, p99_ms, p50_ms, drift, agreement
    subject = models.CharField(max_length=32, help_text="The revision the value is of, e.g. r4.")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=8, choices=CheckVerdict.choices)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["revision", "checked_at", "pk"]
        indexes = [models.Index(fields=["revision", "step"])]

    def __str__(self) -> str:
        return f"{self.revision} step {self.step} {self.metric} {self.subject}: {self.verdict}"
