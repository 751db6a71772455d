from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.accounts.choices import Role
from apps.common.models import TimeStampedModel
from apps.promotions.choices import PromotionStatus, ReviewDecision

__all__ = ["PromotionPolicy", "PromotionRequest", "PromotionReview"]

APPROVER_ROLES = [(Role.REVIEWER.value, Role.REVIEWER.label), (Role.ADMIN.value, Role.ADMIN.label)]


class PromotionPolicy(TimeStampedModel):
    """What a promotion to one environment needs. An environment without a row uses the field defaults."""

    environment = models.OneToOneField(
        "deployments.Environment", on_delete=models.CASCADE, related_name="promotion_policy"
    )
    approvals_required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    approver_role = models.CharField(
        max_length=16, choices=APPROVER_ROLES, default=Role.REVIEWER, help_text="Admins count as reviewers."
    )
    require_live_in = models.ForeignKey(
        "deployments.Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version must be live there first (e.g. staging before production).",
    )
    max_age_hours = models.PositiveIntegerField(
        default=72, validators=[MinValueValidator(1)], help_text="A pending request expires after this."
    )
    required_strategy = models.CharField(
        max_length=16,
        blank=True,
        choices=[("canary", "Canary"), ("blue_green", "Blue-green"), ("shadow", "Shadow")],
        help_text="An approved promotion deploys with this rollout strategy (its keys from the environment's "
        "default); blank: the environment's default.",
    )

    class Meta:
        verbose_name_plural = "promotion policies"

    def __str__(self) -> str:
        return f"promotion policy of {self.environment_id and self.environment}"

    @property
    def max_age(self) -> timedelta:
        return timedelta(hours=self.max_age_hours)


class PromotionRequest(TimeStampedModel):
    """Asks to move one model version to one gated environment; reviewers decide."""

    model_name = models.CharField(max_length=500)
    version = models.CharField(max_length=32)
    environment = models.ForeignKey("deployments.Environment", on_delete=models.PROTECT, related_name="promotions")
    justification = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=PromotionStatus.choices, default=PromotionStatus.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=500, blank=True, help_text="Why it expired, was cancelled, ...")
    executed_revision = models.ForeignKey(
        "deployments.Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions"
    )
    executed_at = models.DateTimeField(null=True, blank=True)
    execution_error = models.TextField(blank=True, help_text="Why the last attempt to execute failed; it is retried.")
    idempotency_key = models.CharField(max_length=200, blank=True, help_text="The requester's Idempotency-Key.")
    comparison = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="What the request compared when it was made (apps/promotions/comparison.py); "
        "null for requests made before requests kept it.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_name", "environment", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_promotion_idempotency_key_per_user",
            ),
            models.UniqueConstraint(
                fields=["model_name", "environment"],
                condition=models.Q(status="pending"),
                name="one_pending_promotion_per_model_and_environment",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.model_name} v{self.version} to {self.environment_id and self.environment}"

    @property
    def is_pending(self) -> bool:
        return self.status == PromotionStatus.PENDING


class PromotionReview(TimeStampedModel):
    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=ReviewDecision.choices)
    comment = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True, help_text="The reviewer's Idempotency-Key.")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="one_review_per_reviewer"),
            models.UniqueConstraint(
                fields=["reviewer", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_review_idempotency_key_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer_id} {self.decision} #{self.request_id}"
