"""Celery tasks of monitoring: thin callers of ``services.py``. Arguments are ids only."""

from __future__ import annotations

from celery import shared_task

from apps.monitoring import services


@shared_task(name="monitoring.baseline_upload_process", acks_late=True)
def baseline_upload_process(*, upload_id: int) -> str:
    """Parse a stored baseline upload (safe to run twice: only a queued upload is taken)."""
    return services.baseline_upload_process(upload_id=upload_id)
