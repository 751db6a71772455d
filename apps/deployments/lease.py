"""The one lease on a revision: who works on it, and until when.

A worker claims a revision with a conditional update (queued, or running with a lapsed lease, to running with a
lease of ``DEPLOY_LEASE_SECONDS``); the claim counts an attempt, and the attempt's number is the worker's
name on the lease. The worker keeps the lease alive from a background thread while it works, however quiet the
work is: a step can wait minutes without a log line (a slow image pull), and a rollback waits for the previous
revision to serve again. A worker that dies stops renewing; once the lease lapses ``requeue_stuck`` hands the
revision to another worker, whose claim succeeds and counts the next attempt. A worker that gives the revision
back (a transient error) releases the lease so the retry may claim it at once.

Renewing, releasing and the pipeline's writes name the attempt: a worker that was only stalled (a frozen
process, a database pause longer than the lease) and whose revision was taken over meanwhile finds its renewal
refused, and :meth:`Lease.check` raises :class:`LeaseLost` before its next write, so it stops without writing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision

__all__ = ["Lease", "LeaseLost", "claim", "lease_kept", "release", "renew"]

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the revision over (this worker's lease lapsed): stop, and write nothing more."""


@dataclass
class Lease:
    """Attempt ``attempt`` of revision ``revision_id``, as held by this worker."""

    revision_id: int
    attempt: int
    lost: threading.Event = field(default_factory=threading.Event)

    def held(self) -> Q:
        """The filter that matches the revision only while this attempt holds it (for conditional writes)."""
        return Q(pk=self.revision_id, attempts=self.attempt, status=RevisionStatus.RUNNING)

    def check(self) -> None:
        """Raise :class:`LeaseLost` if another attempt holds the revision now. Call it before every write."""
        if self.lost.is_set() or not Revision.objects.filter(self.held()).exists():
            self.lost.set()
            raise LeaseLost(f"revision {self.revision_id}: attempt {self.attempt} was taken over by another worker")


def _expiry():
    return timezone.now() + timedelta(seconds=settings.DEPLOY_LEASE_SECONDS)


def claim(revision_id: int) -> Lease | None:
    """Take the revision if it is queued or its lease lapsed: the lease of the new attempt, or None if it is
    finished or another worker holds it."""
    now = timezone.now()
    claimable = Q(status=RevisionStatus.QUEUED) | Q(status=RevisionStatus.RUNNING, lease_until__lt=now)
    with transaction.atomic():  # the UPDATE locks the row: the attempt read back is the one this claim counted
        changed = Revision.objects.filter(claimable, pk=revision_id).update(
            status=RevisionStatus.RUNNING, lease_until=_expiry(), attempts=F("attempts") + 1
        )
        if changed != 1:
            return None
        Revision.objects.filter(pk=revision_id, started_at__isnull=True).update(started_at=now)
        attempt = Revision.objects.values_list("attempts", flat=True).get(pk=revision_id)
    return Lease(revision_id=revision_id, attempt=attempt)


def renew(lease: Lease) -> bool:
    """Extend the lease by ``DEPLOY_LEASE_SECONDS`` from now; False (and the lease marked lost) when another
    attempt holds the revision, or it is no longer running."""
    renewed = Revision.objects.filter(lease.held()).update(lease_until=_expiry()) == 1
    if not renewed:
        lease.lost.set()
    return renewed


def release(lease: Lease) -> None:
    """Give the revision back (a transient error): the retry, or ``requeue_stuck``, may claim it at once. A lease
    already taken over is left to its new holder."""
    Revision.objects.filter(lease.held()).update(lease_until=timezone.now())


def _renew_unless_locked(lease: Lease) -> None:
    # skip_locked: if our own work holds the row in an open transaction, waiting would deadlock the two.
    with transaction.atomic():
        locked = Revision.objects.select_for_update(skip_locked=True).filter(pk=lease.revision_id)
        if connection.features.has_select_for_update_skip_locked and not locked.exists():
            return
        renew(lease)


@contextlib.contextmanager
def lease_kept(lease: Lease) -> Iterator[Lease]:
    """Renew the claimed revision's lease every quarter lease from a thread until the block ends, or until a
    renewal finds the revision taken over (then ``lease.lost`` is set and the next ``lease.check()`` raises)."""
    stop = threading.Event()
    interval = max(settings.DEPLOY_LEASE_SECONDS / 4, 0.5)

    def keep() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _renew_unless_locked(lease)
                except DatabaseError as exc:  # a busy SQLite file or a dropped connection: try next time
                    logger.debug("lease renewal of revision %s failed: %s", lease.revision_id, exc)
                if lease.lost.is_set():
                    logger.warning(
                        "revision %s: attempt %s lost its lease to another worker; stopping",
                        lease.revision_id,
                        lease.attempt,
                    )
                    return
        finally:
            connection.close()

    keeper = threading.Thread(target=keep, name=f"lease-{lease.revision_id}", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        stop.set()
        keeper.join(timeout=interval + 5)
