"""Celery tasks of promotions: expiry of stale requests, retrying execution (notifications: apps/events).

Thin callers of ``services.py``. Arguments are ids only. Every task is safe to run twice.
"""

from __future__ import annotations

from celery import shared_task

from apps.promotions import services


@shared_task(name="promotions.expire_stale")
def expire_stale() -> int:
    return services.promotion_expire_stale()


@shared_task(name="promotions.execute_approved")
def execute_approved() -> int:
    """Retry approved requests whose execution failed (registry down, a rollout in progress)."""
    return services.promotion_execute_approved()
