"""Issue 17, fault suite: a worker SIGKILLed at every step of a rollout, at the worst moment (the step's work done,
its success not yet recorded), is resumed by the next worker once its lease lapses. One revision goes through all
seven steps with a worker killed at each: real Celery workers running the real beat (whose ``requeue_stuck``
hands the revision on), each resuming the step its predecessor was killed in and killed in turn at the next. In
the end the revision is live once, with one revision, one set of steps, one audit event per action and one
scoring process. (One chain, not seven separate rollouts: the same kills at a seventh of the time.) The local
target builds no image: build and push are skipped steps, killed as they record the skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.accounts.models import AuditEvent
from apps.deployments import pipeline
from apps.deployments.choices import StepName
from apps.deployments.models import Revision, RevisionStep
from tests.deployments.test_end_to_end import _deploy, _serves
from tests.faults.held import step_finish_held
from tests.workers import start_worker, stop_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 2


def _statuses(revision_id: int) -> dict[str, str]:
    return dict(RevisionStep.objects.filter(revision_id=revision_id).values_list("name", "status"))


def test_a_worker_killed_as_it_records_each_step_is_resumed_without_duplicates(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path, settings
):
    settings.DEPLOY_LEASE_SECONDS = LEASE
    env = {**worker_env, "DEPLOY_LEASE_SECONDS": str(LEASE), "DEPLOY_REQUEUE_SECONDS": "1"}
    log = tmp_path / "worker.log"
    beat = ("--beat", "--schedule", str(tmp_path / "beat-schedule"), "--without-mingle", "--without-gossip")
    revision_id = None
    for attempt, step in enumerate(StepName.values, start=1):
        with step_finish_held(step) as (holder, waiting):
            worker = start_worker(log, env=env, args=beat)
            try:
                if revision_id is None:
                    revision_id = _deploy(lead_api, "2", "killed-at-every-step")["id"]
                session = wait_for(waiting, timeout=120, what=f"attempt {attempt} to record {step}", log=log)
            finally:
                stop_worker(worker, kill=True)
            holder.execute("select pg_terminate_backend(%s)", [session])  # its half-done UPDATE is rolled back
        statuses = _statuses(revision_id)
        done = StepName.values[: attempt - 1]
        assert statuses[step] == "running", f"{step}: its work done, its success never recorded"
        assert all(statuses[name] in ("succeeded", "skipped") for name in done), statuses
        assert Revision.objects.get(pk=revision_id).attempts == attempt
        if attempt > 1:
            previous = RevisionStep.objects.get(revision_id=revision_id, name=StepName.values[attempt - 2])
            assert f"resuming (attempt {attempt})" in previous.log, previous.log

    # A last worker (this process) claims the revision once the lease lapsed and finishes it.
    def resumed() -> str | None:
        outcome = pipeline.revision_run(revision_id=revision_id)
        return None if outcome.startswith("not claimable") else outcome

    assert wait_for(resumed, timeout=LEASE * 10, what="the lease to lapse") == "live"

    revision = Revision.objects.select_related("deployment").get(pk=revision_id)
    final = len(StepName.values) + 1
    assert (revision.status, revision.attempts) == ("live", final)
    assert Revision.objects.count() == 1
    steps = list(revision.steps.values_list("name", "status"))
    assert [name for name, _ in steps] == StepName.values, "one row per step, none added"
    assert {status for _, status in steps} <= {"succeeded", "skipped"}, steps
    assert f"resuming (attempt {final})" in revision.steps.get(name=StepName.LIVE).log
    assert AuditEvent.objects.filter(action="deployment.deploy").count() == 1
    assert AuditEvent.objects.filter(action="deployment.live").count() == 1
    assert not AuditEvent.objects.filter(action__in=["deployment.failed", "deployment.rolled_back"]).exists()
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _serves(p, revision.model_dir)]
    assert len(servers) == 1, "the scoring process is adopted, never started twice"
    assert revision.deployment.live_revision_id == revision.pk and revision.deployment.status == "live"
