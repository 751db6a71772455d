from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone

from apps.common.models import WorkerHeartbeat


@shared_task(name="common.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Record that a worker is alive. Running it twice just moves the timestamp."""
    WorkerHeartbeat.objects.update_or_create(worker=socket.gethostname(), defaults={"seen_at": timezone.now()})
