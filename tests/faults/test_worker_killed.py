"""Issue 17 item 7: a worker SIGKILLed mid-rollout, with the shipped lease and requeue period, is replaced by a
second worker (running the real beat) within about lease + requeue period, and the rollout runs once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.accounts.models import AuditEvent
from apps.deployments.models import Revision
from tests.deployments.test_end_to_end import _deploy, _finished, _serves
from tests.workers import kill_during_rollout, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PICKUP_SLACK = 6  # the beat's first tick and the task's pick-up on a loaded machine


def test_a_killed_worker_s_rollout_resumes_within_lease_and_requeue_period(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path
):
    lease, period = django_settings.DEPLOY_LEASE_SECONDS, django_settings.DEPLOY_REQUEUE_SECONDS
    env = {**worker_env, "DEPLOY_LEASE_SECONDS": str(lease), "DEPLOY_REQUEUE_SECONDS": str(period)}
    log = tmp_path / "worker.log"
    revision_id = kill_during_rollout(lambda: _deploy(lead_api, "2", "killed-1")["id"], log=log, env=env)
    killed_at = time.monotonic()

    beat = ("--beat", "--schedule", str(tmp_path / "beat-schedule"))
    log = tmp_path / "second-worker.log"
    with running_worker(log, env=env, args=beat):
        wait_for(lambda: " ready." in log.read_text(errors="replace"), timeout=120, what="the second worker", log=log)
        started_after = time.monotonic() - killed_at  # the test's own worker start, not the product's
        wait_for(
            lambda: Revision.objects.filter(pk=revision_id, attempts=2).exists(),
            timeout=lease + period + 60,
            what="a second worker to claim the revision",
            log=log,
        )
        resumed_after = time.monotonic() - killed_at
        revision = _finished(lead_api, f"/api/v1/revisions/{revision_id}/", log)
    print(
        f"resumed {resumed_after:.1f} s after the kill, worker up after {started_after:.1f} s (lease {lease} s,"
        f" requeue every {period} s)"
    )
    assert resumed_after < max(lease, started_after) + period + PICKUP_SLACK, (resumed_after, started_after)
    assert resumed_after > lease * 0.7, "the dead worker's lease was respected until it ran out"
    assert revision["status"] == "live" and revision["attempts"] == 2
    assert AuditEvent.objects.filter(action="deployment.live", target_id=revision_id).count() == 1
    model_dir = Revision.objects.get(pk=revision_id).model_dir
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _serves(p, model_dir)]
    assert len(servers) == 1, "the scoring server the killed worker started is adopted, not started twice"
