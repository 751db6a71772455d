from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.common.models import WorkerHeartbeat
from apps.common.uris import mask_uri

__all__ = ["system_status_get", "SystemStatus"]

WORKER_FRESH = timedelta(minutes=2)


@dataclass(frozen=True)
class SystemStatus:
    database: str
    broker: str
    registry: str
    registry_ok: bool
    registry_error: str
    worker_seen_at: datetime | None
    worker_ok: bool


def system_status_get() -> SystemStatus:
    from apps.registry.selectors import registered_model_list

    try:
        registered_model_list(page_size=1)
        registry_error = ""
    except ApplicationError as exc:
        registry_error = exc.message
    beat = WorkerHeartbeat.objects.order_by("-seen_at").first()
    seen = beat.seen_at if beat else None
    return SystemStatus(
        database=f"{connection.vendor} {connection.settings_dict.get('NAME')}",
        broker=mask_uri(settings.CELERY_BROKER_URL),
        registry=mask_uri(settings.MLFLOW_REGISTRY_URI),
        registry_ok=not registry_error,
        registry_error=registry_error,
        worker_seen_at=seen,
        worker_ok=bool(seen and timezone.now() - seen < WORKER_FRESH),
    )
