"""A revision driven through its steps in-process, against the real local target: real scoring
processes, a real MLflow registry, real HTTP. The Celery path is in test_end_to_end."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import requests
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.deployments import lease, pipeline, services, tasks
from apps.deployments.choices import DeploymentStatus, RevisionStatus, StepStatus
from apps.deployments.models import Deployment, Revision
from apps.deployments.targets.local_process import _alive
from tests.deployments.broken_model import UnimportableModel
from tests.registries import register_pyfunc_version
from tests.workers import wait_for

pytestmark = pytest.mark.django_db

_capture = None
SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "credit-default-sample-request.json"


@pytest.fixture(autouse=True)
def _on_commit(django_capture_on_commit_callbacks):
    """Run on-commit work (stopping superseded servers) as a committed transaction would."""
    global _capture
    _capture = django_capture_on_commit_callbacks
    yield


def _run(actor, version: str, model: str = "credit-default") -> Revision:
    revision = services.deployment_create(actor=actor, model_name=model, model_version=version, environment="dev")
    with _capture(execute=True):
        assert pipeline.revision_run(revision_id=revision.pk) in ("live", "failed at rollout")
    return Revision.objects.select_related("deployment").get(pk=revision.pk)


def _state(revision: Revision) -> dict:
    from django.conf import settings

    path = Path(settings.DEPLOY_LOCAL_DIR) / "dev" / revision.deployment.name / f"{revision.label}.json"
    return json.loads(path.read_text())


@pytest.fixture
def cleanup(settings):
    yield
    for deployment in Deployment.objects.all():
        latest = deployment.revisions.first()
        if latest:
            pipeline.target_for(deployment, latest.config).delete(pipeline.serving_spec(latest), lambda line: None)


def _score_sample(url: str) -> list:
    records = json.loads(SAMPLE.read_text()) if SAMPLE.exists() else None
    assert records, f"the reference sample request is missing at {SAMPLE}"
    response = requests.post(f"{url}/predict", json=records, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


class LocalRolloutTests:
    def test_a_version_goes_live_and_scores_the_reference_request(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        revision = _run(alice, "2")
        assert revision.status == RevisionStatus.LIVE, revision.error
        steps = {s.name: s for s in revision.steps.all()}
        assert steps["build"].status == StepStatus.SKIPPED and "no image needed" in steps["build"].message
        assert all(
            steps[n].status == StepStatus.SUCCEEDED for n in ("resolve", "apply", "rollout", "smoke_test", "live")
        )
        assert "scored the input example" in steps["smoke_test"].message
        deployment = Deployment.objects.get()
        assert deployment.status == DeploymentStatus.LIVE and deployment.live_revision == revision
        assert deployment.endpoint_url.startswith("http://127.0.0.1:")
        assert len(_score_sample(deployment.endpoint_url)) == 1
        version = requests.get(f"{deployment.endpoint_url}/version", timeout=5).json()
        assert (version["model_name"], version["model_version"], version["revision"]) == ("credit-default", "2", "r1")

    def test_a_new_version_supersedes_the_old_and_stops_its_process(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        first = _run(alice, "1")
        old = _state(first)
        second = _run(alice, "2")
        first.refresh_from_db()
        assert (first.status, second.status) == (RevisionStatus.SUPERSEDED, RevisionStatus.LIVE)
        assert not _alive(old["pid"], old["model_dir"]), "the superseded scoring server is stopped"
        assert Deployment.objects.get().live_revision == second

    def test_running_a_finished_revision_again_changes_nothing(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        revision = _run(alice, "2")
        pid = _state(revision)["pid"]
        assert pipeline.revision_run(revision_id=revision.pk).startswith("not claimable")
        assert _state(revision)["pid"] == pid and Revision.objects.get(pk=revision.pk).attempts == 1

    def test_a_worker_that_died_mid_rollout_is_resumed_without_duplicates(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        revision = services.deployment_create(
            actor=alice, model_name="credit-default", model_version="2", environment="dev"
        )
        # What a SIGKILL after "apply" leaves behind: a running revision whose lease ran out, a step half done.
        lease.claim(revision.pk)
        revision = Revision.objects.select_related("deployment__environment").get(pk=revision.pk)
        for step in revision.steps.all()[:4]:
            pipeline._run_step(revision, step)
        pid = _state(revision)["pid"]
        revision.steps.filter(name="rollout").update(status=StepStatus.RUNNING, started_at=timezone.now())
        Revision.objects.filter(pk=revision.pk).update(lease_until=timezone.now())

        assert pipeline.revision_run(revision_id=revision.pk) == "live"
        revision.refresh_from_db()
        assert revision.status == RevisionStatus.LIVE and revision.attempts == 2
        assert _state(revision)["pid"] == pid, "the running scoring server was adopted, not started twice"
        assert revision.steps.count() == len(services.DEPLOY_STEPS)

    def test_a_crashing_version_is_rolled_back_to_the_live_one(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        live = _run(alice, "2")
        broken_version = _register_unimportable_version(registry)
        failed = _run(alice, broken_version, model="credit-default")
        assert failed.status == RevisionStatus.ROLLED_BACK
        assert "Roll out failed: scoring server exited" in failed.error and "rolled back to r1" in failed.error
        assert "No module named 'tests'" in failed.error, "the reason names what the person must fix"
        deployment = Deployment.objects.get()
        assert deployment.live_revision == live and deployment.status == DeploymentStatus.LIVE
        assert len(_score_sample(deployment.endpoint_url)) == 1, "the previous revision still serves"
        assert failed.steps.get(name="rollout").status == StepStatus.FAILED

    def test_a_first_revision_that_crashes_fails_the_deployment(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        failed = _run(alice, _register_unimportable_version(registry))
        assert failed.status == RevisionStatus.FAILED
        assert Deployment.objects.get().status == DeploymentStatus.FAILED


def _register_unimportable_version(registry) -> str:
    return register_pyfunc_version(
        registry, UnimportableModel(), model_name="credit-default", input_example=pd.DataFrame({"x": [1.0]})
    )


class ReconcileLocalTests:
    def test_a_dead_scoring_process_of_a_live_deployment_is_restarted(
        self, alice, environments, registry, local_dirs, cleanup
    ):
        revision = _run(alice, "2")
        old = _state(revision)
        assert tasks.reconcile_local() == 0, "a healthy deployment is left alone"
        os.kill(old["pid"], signal.SIGKILL)
        wait_for(lambda: not _alive(old["pid"], old["model_dir"]), timeout=5, what="the process to die")
        assert tasks.reconcile_local() == 1
        event = AuditEvent.objects.get(action="deployment.restarted")
        assert (event.source, event.actor_name, event.target_id) == ("system", "system", str(revision.pk))
        new = _state(revision)
        assert new["pid"] != old["pid"] and _alive(new["pid"], new["model_dir"])
        assert len(_score_sample(Deployment.objects.get().endpoint_url)) == 1
