"""Keeps a claimed revision's lease alive while a step runs, however quiet the step is.

A step can wait minutes without a log line (a slow image pull). Without renewal its lease would lapse and
``requeue_stuck`` would hand the revision to a second worker while the first still works on it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision

__all__ = ["lease_kept", "renew"]

logger = logging.getLogger(__name__)


def renew(revision_id: int) -> None:
    Revision.objects.filter(pk=revision_id, status=RevisionStatus.RUNNING).update(
        lease_until=timezone.now() + timedelta(seconds=settings.DEPLOY_LEASE_SECONDS)
    )


def _renew_unless_locked(revision_id: int) -> None:
    # skip_locked: if our own step holds the row in an open transaction, waiting would deadlock the two.
    with transaction.atomic():
        locked = Revision.objects.select_for_update(skip_locked=True).filter(pk=revision_id)
        if connection.features.has_select_for_update_skip_locked and not locked.exists():
            return
        renew(revision_id)


@contextlib.contextmanager
def lease_kept(revision_id: int) -> Iterator[None]:
    stop = threading.Event()
    interval = max(settings.DEPLOY_LEASE_SECONDS / 4, 0.5)

    def keep() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _renew_unless_locked(revision_id)
                except DatabaseError as exc:  # a busy SQLite file or a dropped connection: try next time
                    logger.debug("lease renewal of revision %s failed: %s", revision_id, exc)
        finally:
            connection.close()

    keeper = threading.Thread(target=keep, name=f"lease-{revision_id}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=interval + 5)
