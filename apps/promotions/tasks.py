"""Celery tasks of promotions: webhook notifications, expiry of stale requests, retrying execution.

Thin callers of ``webhooks.py`` and ``services.py``. Arguments are ids only. Every task is safe to run twice.
"""

from __future__ import annotations

import requests
from celery import shared_task

from apps.promotions import services
from apps.promotions.webhooks import WebhookError, promotion_notify


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
    return promotion_notify(request_id=request_id, event=event)


@shared_task(name="promotions.expire_stale")
def expire_stale() -> int:
    return services.promotion_expire_stale()


@shared_task(name="promotions.execute_approved")
def execute_approved() -> int:
    """Retry approved requests whose execution failed (registry down, a rollout in progress)."""
    return services.promotion_execute_approved()
