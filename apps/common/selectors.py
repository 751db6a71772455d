from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.common.errors import ApplicationError
from apps.common.models import WorkerHeartbeat
from apps.common.uris import mask_uri, mask_uris_in

__all__ = ["cache_state", "readiness_get", "system_status_get", "SystemStatus"]

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


def cache_state() -> str:
    """ "ok", "unreachable" (Redis down: pages run without a cache) or "local" (an in-process cache)."""
    from django.core.cache import cache

    available = getattr(cache, "available", None)
    if available is None:
        return "local"
    return "ok" if available() else "unreachable"


def readiness_get() -> dict[str, str]:
    """ "ok" or the reason, per backing service a request needs: the database, the broker, the cache."""
    from celery import current_app

    checks = {}
    try:
        connection.ensure_connection()
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = mask_uris_in(f"{type(exc).__name__}: {exc}")[:300]
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # kombu raises many kinds
        checks["broker"] = mask_uris_in(f"{type(exc).__name__}: {exc}")[:300]
    checks["cache"] = cache_state()
    return checks
