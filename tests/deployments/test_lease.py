"""A quiet step keeps its revision's lease; a dead worker's lease runs out; a lease taken over cannot be renewed
or released by the attempt that lost it, and that attempt's writes are refused."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.deployments import lease, pipeline, services
from apps.deployments.models import Revision

pytestmark = pytest.mark.django_db(transaction=True)


def _revision(alice) -> Revision:
    return services.deployment_create(actor=alice, model_name="credit-default", model_version="2", environment="dev")


def _lapse(revision: Revision) -> None:
    Revision.objects.filter(pk=revision.pk).update(lease_until=timezone.now())


def test_a_silent_step_keeps_its_lease_beyond_the_lease_length(alice, environments, registry, settings):
    settings.DEPLOY_LEASE_SECONDS = 2
    revision = _revision(alice)
    held = lease.claim(revision.pk)
    assert held and held.attempt == 1
    with lease.lease_kept(held):
        time.sleep(3)  # longer than the lease, without a single log line
        assert Revision.objects.get(pk=revision.pk).lease_until > timezone.now()
        assert not lease.claim(revision.pk), "no second worker can take it meanwhile"
    time.sleep(2.5)
    assert lease.claim(revision.pk).attempt == 2, "once nobody keeps it, the lease runs out and another may claim"


def test_a_renewal_by_the_attempt_that_was_taken_over_fails(alice, environments, registry):
    revision = _revision(alice)
    first = lease.claim(revision.pk)
    _lapse(revision)  # the first worker stalled past its lease ...
    second = lease.claim(revision.pk)  # ... and another worker took the revision over
    assert (first.attempt, second.attempt) == (1, 2)
    until = Revision.objects.get(pk=revision.pk).lease_until

    assert not lease.renew(first) and first.lost.is_set()
    lease.release(first)
    assert Revision.objects.get(pk=revision.pk).lease_until == until, "the loser neither renews nor releases"
    with pytest.raises(lease.LeaseLost, match="attempt 1 was taken over"):
        first.check()

    assert lease.renew(second) and not second.lost.is_set()
    second.check()
    assert Revision.objects.get(pk=revision.pk).lease_until > until


def test_the_keeper_thread_stops_renewing_once_the_lease_is_taken_over(alice, environments, registry, settings):
    settings.DEPLOY_LEASE_SECONDS = 2  # renewed every 0.5 s
    revision = _revision(alice)
    first = lease.claim(revision.pk)
    with lease.lease_kept(first):
        _lapse(revision)
        second = lease.claim(revision.pk)
        deadline = time.monotonic() + 5
        while not first.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.lost.is_set(), "the next renewal found the revision taken over"
        assert Revision.objects.get(pk=revision.pk).attempts == second.attempt == 2


def test_a_taken_over_attempt_writes_no_step_and_no_audit_event(alice, environments, registry, local_dirs):
    revision = _revision(alice)
    first = lease.claim(revision.pk)
    revision = Revision.objects.select_related("deployment__environment").get(pk=revision.pk)
    resolve = revision.steps.get(name="resolve")
    _lapse(revision)
    lease.claim(revision.pk)
    with pytest.raises(lease.LeaseLost):
        pipeline._run_step(revision, resolve, first)
    resolve.refresh_from_db()
    assert (resolve.status, resolve.log, resolve.started_at) == ("pending", "", None)
    with pytest.raises(lease.LeaseLost):
        pipeline._fail(revision, "whatever", first)
    assert Revision.objects.get(pk=revision.pk).status == "running"
    assert not AuditEvent.objects.filter(action__in=["deployment.failed", "deployment.live"]).exists()
