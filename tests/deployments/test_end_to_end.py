"""The whole deploy flow through the REST API, run by real Celery workers on real Redis and PostgreSQL,
serving real scoring processes: deploy, score, deploy again, roll back, delete; and a worker killed
mid-rollout whose revision another worker finishes once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from rest_framework.test import APIClient

from apps.accounts.models import AuditEvent
from apps.deployments import tasks
from apps.deployments.models import Revision
from tests.workers import kill_during_rollout, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "credit-default-sample-request.json"
FINAL = {"live", "failed", "rolled_back"}


def _finished(api: APIClient, url: str, log: Path, timeout: float = 180) -> dict:
    def final():
        body = api.get(url).json()
        return body if body["status"] in FINAL else None

    return wait_for(final, timeout=timeout, what=f"{url} to finish", log=log)


def _deploy(api: APIClient, version: str, key: str) -> dict:
    response = api.post(
        "/api/v1/deployments/",
        {"model": "credit-default", "version": version, "environment": "dev"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert response.status_code == 202, response.content
    assert response["Location"] == response.json()["url"]
    return response.json()


def test_deploy_score_roll_back_and_delete_through_the_api(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path
):
    log = tmp_path / "worker.log"
    with running_worker(log, env=worker_env):
        queued = _deploy(lead_api, "1", "e2e-1")
        assert queued["status"] == "queued" and queued["revision"] == "r1"
        assert _deploy(lead_api, "1", "e2e-1")["id"] == queued["id"], "the same Idempotency-Key starts nothing new"
        first = _finished(lead_api, queued["url"], log)
        assert first["status"] == "live", first
        deployment = lead_api.get(f"/api/v1/deployments/{first['deployment']}/").json()
        endpoint = deployment["endpoint_url"]
        records = json.loads(SAMPLE.read_text())
        assert requests.post(f"{endpoint}/predict", json=records, timeout=10).json()["predictions"] == [0]

        second = _finished(lead_api, _deploy(lead_api, "2", "e2e-2")["url"], log)
        assert second["status"] == "live" and second["revision"] == "r2"

        response = lead_api.post(f"/api/v1/deployments/{first['deployment']}/rollback/", {"revision": 1}, format="json")
        assert response.status_code == 202, response.content
        restored = _finished(lead_api, response.json()["url"], log)
        assert (restored["status"], restored["kind"], restored["model_version"]) == ("live", "rollback", "1")
        deployment = lead_api.get(f"/api/v1/deployments/{first['deployment']}/").json()
        assert (deployment["live_revision"], deployment["model_version"]) == ("r3", "1")
        assert [r["status"] for r in deployment["revisions"]] == ["live", "superseded", "superseded"]

        assert lead_api.delete(f"/api/v1/deployments/{first['deployment']}/").status_code == 202
        wait_for(
            lambda: lead_api.get(f"/api/v1/deployments/{first['deployment']}/").json()["status"] == "deleted",
            timeout=60,
            what="the deployment to be deleted",
            log=log,
        )
    # The requests are the API's; what the worker did on its own (going live, the tear-down) is the system's.
    sources = AuditEvent.objects.filter(action__startswith="deployment.").values_list("action", "source")
    assert set(sources) == {
        ("deployment.deploy", "api"),
        ("deployment.rollback", "api"),
        ("deployment.delete", "api"),
        ("deployment.live", "system"),
        ("deployment.deleted", "system"),
    }
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{deployment['endpoint_url']}/health/live", timeout=2)


def test_a_worker_killed_mid_rollout_is_finished_once_by_another(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path, local_dirs
):
    log = tmp_path / "worker.log"
    revision_id = kill_during_rollout(lambda: _deploy(lead_api, "2", "kill-1")["id"], log=log, env=worker_env)
    assert Revision.objects.get(pk=revision_id).status == "running"

    with running_worker(log, env=worker_env):
        wait_for(lambda: tasks.requeue_stuck() > 0, timeout=30, what="the lease to expire and a re-queue", log=log)
        revision = _finished(lead_api, f"/api/v1/revisions/{revision_id}/", log)
    assert revision["status"] == "live" and revision["attempts"] == 2
    assert "resuming (attempt 2)" in next(s["log"] for s in revision["steps"] if s["name"] == "rollout")
    model_dir = Revision.objects.get(pk=revision_id).model_dir
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _serves(p, model_dir)]
    assert len(servers) == 1, "the scoring server started before the kill was adopted, not started again"


def _serves(proc: Path, model_dir: str) -> bool:
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"scoring" in args and model_dir.encode() in args and b"serve" in args
