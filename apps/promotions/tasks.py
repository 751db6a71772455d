"""Celery tasks of promotions: webhook notifications, expiry of stale requests, retrying execution.

Arguments are ids only. Every task is safe to run twice.
"""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from django.urls import reverse

from apps.promotions import services
from apps.promotions.choices import PromotionStatus, ReviewDecision
from apps.promotions.models import PromotionRequest

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 10


class WebhookError(Exception):
    """The webhook answered with a status that may go away (5xx, 429); the task retries."""


def webhook_payload(promotion: PromotionRequest, event: str) -> dict[str, object]:
    """JSON with a ``text`` field, which Teams and Slack incoming webhooks both accept, plus the details."""
    approvers = [r.reviewer.get_username() for r in promotion.reviews.all() if r.decision == ReviewDecision.APPROVE]
    what = f"{promotion.model_name} v{promotion.version} to {promotion.environment.name}"
    text = {
        "requested": f"{promotion.requested_by.get_username()} requests promotion #{promotion.pk}: {what}.",
        "approval": f"Promotion #{promotion.pk} ({what}) has an approval from {', '.join(approvers)}.",
        "approved": f"Promotion #{promotion.pk} ({what}) is approved by {', '.join(approvers)}.",
        "rejected": f"Promotion #{promotion.pk} ({what}) is rejected: {promotion.status_reason}.",
        "cancelled": f"Promotion #{promotion.pk} ({what}) is {promotion.status_reason}.",
        "executed": f"Promotion #{promotion.pk} ({what}) executed: the alias moved and the rollout started.",
    }.get(event, f"Promotion #{promotion.pk} ({what}): {event}.")
    return {
        "text": text,
        "event": event,
        "promotion": {
            "id": promotion.pk,
            "model": promotion.model_name,
            "version": promotion.version,
            "environment": promotion.environment.name,
            "status": promotion.status,
            "requested_by": promotion.requested_by.get_username(),
            "approvers": approvers,
            "revision": promotion.executed_revision_id,
            "path": reverse("promotions:promotion_detail", kwargs={"pk": promotion.pk}),
        },
    }


@shared_task(
    name="promotions.notify",
    acks_late=True,
    autoretry_for=(WebhookError, requests.ConnectionError, requests.Timeout),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def notify(*, request_id: int, event: str) -> str:
    """Post the event to the environment's webhook. Never blocks a decision: it runs after the commit."""
    promotion = (
        PromotionRequest.objects.select_related("environment", "requested_by")
        .prefetch_related("reviews__reviewer")
        .filter(pk=request_id)
        .first()
    )
    if promotion is None:
        logger.info("promotion %s is gone; nothing to notify", request_id)
        return "gone"
    url = services.policy_for(promotion.environment).webhook_url
    if not url:
        return "no webhook"
    response = requests.post(url, json=webhook_payload(promotion, event), timeout=WEBHOOK_TIMEOUT)
    if response.status_code == 429 or response.status_code >= 500:
        raise WebhookError(f"webhook answered {response.status_code}")
    if response.status_code >= 400:  # a wrong URL or a refused payload: retrying will not help
        logger.warning(
            "webhook of %s refused promotion %s: %s", promotion.environment, request_id, response.status_code
        )
        return f"refused {response.status_code}"
    return "sent"


@shared_task(name="promotions.expire_stale")
def expire_stale() -> int:
    return services.promotion_expire_stale()


@shared_task(name="promotions.execute_approved")
def execute_approved() -> int:
    """Retry approved requests whose execution failed (registry down, a rollout in progress)."""
    executed = 0
    approved = PromotionRequest.objects.filter(status=PromotionStatus.APPROVED)
    # A move the registry refused (not one it could not take) is not retried: it would be refused forever.
    retryable = approved.exclude(execution_error__startswith=services.REFUSED_PREFIX)
    for pk in retryable.values_list("pk", flat=True):
        executed += services.promotion_execute(promotion=pk).status == PromotionStatus.EXECUTED
    return executed
