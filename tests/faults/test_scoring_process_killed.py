"""Issue 17, fault suite: the scoring process of a live deployment on the local target SIGKILLed. The deployment
page (and its API, ``serving``) says it is not running and that the control plane restarts it; the reconcile the
beat runs every DEPLOY_RECONCILE_SECONDS restarts it (audited once as ``deployment.restarted``), the endpoint
answers again (on the same stable URL: the router in front of the revision) and the page reports the restart.
Nothing else changes: one revision, still live, one live audit event."""

from __future__ import annotations

import os
import signal

import pytest
import requests
from django.urls import reverse

from apps.accounts.models import AuditEvent
from apps.deployments import pipeline, services, tasks
from apps.deployments.models import Deployment, Revision
from apps.deployments.targets.local_process import _alive
from tests.workers import wait_for

pytestmark = pytest.mark.django_db


def test_a_killed_scoring_process_is_reported_and_restarted_once(
    alice, client, lead_api, environments, registry, local_dirs, teardown_local, django_capture_on_commit_callbacks
):
    revision = services.deployment_create(
        actor=alice, model_name="credit-default", model_version="2", environment="dev"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.revision_run(revision_id=revision.pk) == "live"
    deployment = Deployment.objects.select_related("environment", "live_revision").get()
    spec = pipeline.serving_spec(deployment.live_revision)
    target = pipeline.target_for(deployment, deployment.live_revision.config)
    client.force_login(alice)
    page = reverse("deployments:deployment_detail", kwargs={"pk": deployment.pk})
    api = f"/api/v1/deployments/{deployment.pk}/"
    assert 'pill ok">running' in client.get(page).content.decode()

    state = target._state(spec)
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(state["pid"], state["model_dir"]), timeout=10, what="the process to die")
    # The deployment's stable endpoint (its router) still answers, and says that no revision answers behind it.
    down = requests.post(f"{deployment.endpoint_url}/invocations", json={"inputs": [[1]]}, timeout=5)
    assert down.status_code == 502 and f"Revision {spec.revision} gave no answer" in down.json()["message"]
    text = client.get(page).content.decode()
    assert "not running" in text and "the control plane restarts it within 30 s" in text
    assert 'id="serving-restarts"' not in text
    assert lead_api.get(api).json()["serving"] == {"running": False, "restarts": 0, "last_restart": None}

    assert tasks.reconcile_local() == 1  # what the beat runs every DEPLOY_RECONCILE_SECONDS
    url = deployment.endpoint_url
    deployment.refresh_from_db()
    assert deployment.endpoint_url == url, "the restart keeps the deployment's one URL"
    assert requests.get(f"{url}/health/ready", timeout=10).status_code == 200
    assert target._state(spec)["pid"] != state["pid"]
    assert tasks.reconcile_local() == 0, "a running process is left alone"
    text = client.get(page).content.decode()
    assert 'pill ok">running' in text and "Restarted 1 time, last" in text
    serving = lead_api.get(api).json()["serving"]
    assert serving["running"] is True and serving["restarts"] == 1 and serving["last_restart"]
    assert AuditEvent.objects.filter(action="deployment.restarted", target_id=revision.pk).count() == 1
    assert AuditEvent.objects.get(action="deployment.restarted").source == "system"
    assert Revision.objects.get().status == "live" and deployment.live_revision_id == revision.pk
    assert AuditEvent.objects.filter(action="deployment.live").count() == 1
