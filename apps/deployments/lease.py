"""The one lease on a revision: who works on it, and until when.

A worker claims a revision with a conditional update (queued, or running with a lapsed lease, to running with a
lease of ``DEPLOY_LEASE_SECONDS``) and keeps the lease alive from a background thread while it works, however
quiet the work is: a step can wait minutes without a log line (a slow image pull), and a rollback waits for the
previous revision to serve again. A worker that dies stops renewing; once the lease lapses ``requeue_stuck``
hands the revision to another worker, whose claim succeeds. A worker that gives the revision back (a transient
error) releases the lease so the retry may claim it at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision

__all__ = ["claim", "lease_kept", "release", "renew"]

logger = logging.getLogger(__name__)


def _expiry():
    return timezone.now() + timedelta(seconds=settings.DEPLOY_LEASE_SECONDS)


def claim(revision_id: int) -> bool:
    """Take the revision if it is queued or its lease lapsed; False if it is finished or another worker holds it."""
    now = timezone.now()
    claimable = Q(status=RevisionStatus.QUEUED) | Q(status=RevisionStatus.RUNNING, lease_until__lt=now)
    changed = Revision.objects.filter(claimable, pk=revision_id).update(
        status=RevisionStatus.RUNNING, lease_until=_expiry(), attempts=F("attempts") + 1
    )
    if changed:
        Revision.objects.filter(pk=revision_id, started_at__isnull=True).update(started_at=now)
    return changed == 1


def renew(revision_id: int) -> None:
    """Extend the lease of a running revision by ``DEPLOY_LEASE_SECONDS`` from now."""
    Revision.objects.filter(pk=revision_id, status=RevisionStatus.RUNNING).update(lease_until=_expiry())


def release(revision_id: int) -> None:
    """Give the revision back (a transient error): the retry, or ``requeue_stuck``, may claim it at once."""
    Revision.objects.filter(pk=revision_id, status=RevisionStatus.RUNNING).update(lease_until=timezone.now())


def _renew_unless_locked(revision_id: int) -> None:
    # skip_locked: if our own work holds the row in an open transaction, waiting would deadlock the two.
    with transaction.atomic():
        locked = Revision.objects.select_for_update(skip_locked=True).filter(pk=revision_id)
        if connection.features.has_select_for_update_skip_locked and not locked.exists():
            return
        renew(revision_id)


@contextlib.contextmanager
def lease_kept(revision_id: int) -> Iterator[None]:
    """Renew the claimed revision's lease every quarter lease from a thread until the block ends."""
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
