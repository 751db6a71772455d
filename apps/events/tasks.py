"""Celery tasks of events: one per delivery attempt, the registry poller and the requeue of lost deliveries.

Thin callers of ``services.py`` and ``registry_poll.py``; arguments are ids only; each is safe to run twice.
"""

from __future__ import annotations

from celery import shared_task

from apps.events import registry_poll, services


@shared_task(name="events.deliver", bind=True, acks_late=True, max_retries=None)
def deliver(self, *, delivery_id: int) -> str:
    """Attempt the delivery; when the attempt says to try again, retry this task after the delay it chose
    (backoff, or the receiver's Retry-After). The attempt count lives on the row, not in Celery."""
    result = services.delivery_attempt(delivery_id=delivery_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(name="events.poll_registry")
def poll_registry() -> int:
    """Publish the registry's new versions and moved aliases since the last poll (MLflow has no push)."""
    return registry_poll.registry_poll()


@shared_task(name="events.requeue_deliveries")
def requeue_deliveries() -> int:
    return services.deliveries_requeue()
