from __future__ import annotations

import logging

from apps.common.uris import mask_uris_in

__all__ = ["heartbeat_request"]

logger = logging.getLogger(__name__)


def heartbeat_request() -> str:
    """Queue a heartbeat for any worker to answer. Returns why the broker refused it, or "" when queued."""
    from apps.common.tasks import heartbeat as heartbeat_task

    try:
        heartbeat_task.apply_async(retry=False)
    except Exception as exc:  # kombu/redis raise many kinds; the page shows the reason instead of failing
        logger.warning("cannot queue heartbeat: %s", type(exc).__name__)
        return mask_uris_in(f"{type(exc).__name__}: {exc}")[:300]
    return ""
