"""What the status page checks, in its order: composed here, where every app is known (apps/common knows none)."""

from __future__ import annotations

from apps.common.status import broker_status, cache_status, database_status, worker_status
from apps.registry.status import registry_status

# The broker check queues a heartbeat; the worker check reads the last one (reload to see it answered).
STATUS_CHECKS = (database_status, registry_status, broker_status, cache_status, worker_status)
