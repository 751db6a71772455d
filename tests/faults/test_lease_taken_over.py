"""Issue 17 (lease): a worker that only stalls (SIGSTOP: a frozen process, a long pause) past its lease while its
revision is taken over by another worker finds, once it runs again, that its renewal fails; it stops without
writing anything: no step, log line, revision field, lease extension or audit event. The new holder finishes the
revision once. A real Celery worker, frozen and thawed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.deployments import lease, pipeline
from apps.deployments.models import Revision, RevisionStep
from tests.deployments.test_end_to_end import _deploy, _serves
from tests.workers import start_worker, stop_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 2


def _snapshot(revision_id: int) -> tuple:
    revision = model_to_dict(Revision.objects.get(pk=revision_id))
    steps = [model_to_dict(step) for step in RevisionStep.objects.filter(revision_id=revision_id).order_by("pk")]
    return revision, steps, AuditEvent.objects.count()


def test_a_stalled_worker_whose_revision_was_taken_over_stops_without_writing(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path, settings
):
    settings.DEPLOY_LEASE_SECONDS = LEASE
    log = tmp_path / "worker.log"
    worker = start_worker(log, env={**worker_env, "DEPLOY_LEASE_SECONDS": str(LEASE)})
    try:
        revision_id = _deploy(lead_api, "2", "stalled")["id"]
        wait_for(
            lambda: RevisionStep.objects.filter(revision_id=revision_id, name="rollout", status="running").exists(),
            timeout=120,
            what="the rollout step to start",
            log=log,
        )
        os.killpg(worker.pid, signal.SIGSTOP)  # the worker stalls, its lease keeper with it
        wait_for(
            lambda: Revision.objects.filter(pk=revision_id, lease_until__lt=timezone.now()).exists(),
            timeout=LEASE * 5,
            what="the stalled worker's lease to lapse",
        )
        taken = lease.claim(revision_id)  # another worker takes the revision over
        assert taken is not None and taken.attempt == 2
        before = _snapshot(revision_id)
        os.killpg(worker.pid, signal.SIGCONT)
        wait_for(
            lambda: "lease lost: attempt 1 was taken over; stopped" in log.read_text(errors="replace"),
            timeout=60,
            what="the thawed worker to stop",
            log=log,
        )
        assert worker.poll() is None, "the worker itself lives on, for other work"
    finally:
        stop_worker(worker, kill=True)
    assert _snapshot(revision_id) == before, "the stalled worker wrote nothing, not even its lease"

    lease.release(taken)  # the new holder (this process) finishes it
    assert pipeline.revision_run(revision_id=revision_id) == "live"
    revision = Revision.objects.get(pk=revision_id)
    assert AuditEvent.objects.filter(action="deployment.live").count() == 1
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _serves(p, revision.model_dir)]
    assert len(servers) == 1
