"""A quiet step keeps its revision's lease; a dead worker's lease runs out."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from apps.deployments import lease, services
from apps.deployments.models import Revision

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_silent_step_keeps_its_lease_beyond_the_lease_length(alice, environments, registry, settings):
    settings.DEPLOY_LEASE_SECONDS = 2
    revision = services.deployment_create(
        actor=alice, model_name="credit-default", model_version="2", environment="dev"
    )
    assert lease.claim(revision.pk)
    with lease.lease_kept(revision.pk):
        time.sleep(3)  # longer than the lease, without a single log line
        assert Revision.objects.get(pk=revision.pk).lease_until > timezone.now()
        assert not lease.claim(revision.pk), "no second worker can take it meanwhile"
    time.sleep(2.5)
    assert lease.claim(revision.pk), "once nobody keeps it, the lease runs out and another worker may claim"
