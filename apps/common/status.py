"""The status page's parts that belong to no domain: the database, the task broker and the workers.

Each check is a function returning a ``StatusCheck``; apps that know a domain write their own (the MLflow
registry's is ``apps/registry/status.py``) and ``controlplane/status.py`` composes the page's list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.timesince import timesince

from apps.common.models import WorkerHeartbeat
from apps.common.services import heartbeat_request
from apps.common.uris import mask_uri, mask_uris_in

__all__ = [
    "StatusCheck",
    "database_status",
    "broker_status",
    "cache_status",
    "worker_status",
    "readiness_get",
    "WORKER_FRESH",
]

WORKER_FRESH = timedelta(minutes=2)


@dataclass(frozen=True)
class StatusCheck:
    """One row of the status page."""

    name: str
    ok: bool
    state: str  # a word or two for the badge: "reachable", "unreachable", ...
    target: str = ""  # what it is connected to, credentials masked
    detail: str = ""  # plain text instead of (or after) the target
    error: str = ""  # why it is not ok, credentials masked
    severe: bool = True  # a failure that is not severe is shown as a warning

    @property
    def pill(self) -> str:
        return "ok" if self.ok else ("bad" if self.severe else "warn")


def database_status() -> StatusCheck:
    """The page rendered, so the database answered."""
    target = f"{connection.vendor} {connection.settings_dict.get('NAME')}"
    return StatusCheck(name="Database", ok=True, state="connected", target=target)


def broker_status() -> StatusCheck:
    """Queues a heartbeat for any worker to answer: the broker accepted it, or why not."""
    error = heartbeat_request()
    return StatusCheck(
        name="Task broker",
        ok=not error,
        state="unreachable" if error else "accepted a task",
        target=mask_uri(settings.CELERY_BROKER_URL),
        error=error,
    )


def worker_status() -> StatusCheck:
    """A worker is alive when it answered a heartbeat in the last two minutes."""
    beat = WorkerHeartbeat.objects.order_by("-seen_at").first()
    seen = beat.seen_at if beat else None
    ok = bool(seen and timezone.now() - seen < WORKER_FRESH)
    return StatusCheck(
        name="Worker",
        ok=ok,
        state="alive" if ok else "not seen recently",
        detail=f"last heartbeat {timesince(seen)} ago" if seen else "no heartbeat yet",
        severe=False,
    )


def cache_state() -> str:
    """ "ok", "unreachable" (Redis down: pages run without a cache) or "local" (an in-process cache)."""
    from django.core.cache import cache

    available = getattr(cache, "available", None)
    if available is None:
        return "local"
    return "ok" if available() else "unreachable"


def cache_status() -> StatusCheck:
    """The cache is not required: without Redis, pages and sign-in work uncached (slower) until it is back."""
    state = cache_state()
    if state == "unreachable":
        return StatusCheck(
            name="Cache",
            ok=False,
            state="degraded: no cache",
            error="Redis is unreachable: pages and sign-in work without the cache (slower) until it is back.",
            severe=False,
        )
    return StatusCheck(name="Cache", ok=True, state="working", detail="in-process" if state == "local" else "Redis")


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
