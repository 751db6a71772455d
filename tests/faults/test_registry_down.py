"""Issue 17, fault suite: the MLflow registry down (a real ``mlflow server`` process killed) and hanging (a server
that accepts connections and never answers), across what a person touches: the registry pages, the deploy form,
the deploy API, and a rollout's resolve step. Each answers 503 naming the registry and why (cannot be reached /
timed out), writes no revision and no audit event, and a rollout waiting on the registry stays running (its step
says it will retry) and goes live once the registry answers again."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from django.urls import reverse

from apps.accounts.models import AuditEvent
from apps.deployments import pipeline, services
from apps.deployments.backends import TransientBackendError
from apps.deployments.models import Revision
from tests.emulators.silent_server import silent_server
from tests.registries import mlflow_server

pytestmark = pytest.mark.django_db

MODEL, VERSION = "credit-default", "2"


def _kill_mlflow_server(url: str) -> None:
    """SIGKILL the ``mlflow server`` listening at ``url`` and its workers (they share its process group)."""
    port = url.rsplit(":", 1)[1].encode()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if proc.name.isdigit() and b"server" in args and port in args and any(b"mlflow" in a for a in args):
                os.killpg(os.getpgid(int(proc.name)), signal.SIGKILL)
                return
    raise AssertionError(f"no mlflow server at {url}")


def _pages_and_deploys(client, lead_api, environments) -> dict[str, object]:
    """What a person gets from each registry-backed surface, while the registry is out."""
    version_page = reverse("registry:version_detail", kwargs={"name": MODEL, "version": VERSION})
    form = {"model": MODEL, "version": VERSION, "environment": environments["dev"].pk}
    return {
        "models page": client.get(reverse("registry:model_list")),
        "model page": client.get(reverse("registry:model_detail", kwargs={"name": MODEL})),
        "version page": client.get(version_page),
        "deploy form": client.post(reverse("deployments:deployment_create"), form, follow=True),
        "deploy API": lead_api.post(
            "/api/v1/deployments/", {"model": MODEL, "version": VERSION, "environment": "dev"}, format="json"
        ),
    }


def _assert_refused_naming(answers: dict[str, object], reason: str) -> None:
    for surface, response in answers.items():
        assert response.status_code == 503, (surface, response.status_code)
        text = response.content.decode()
        assert "The MLflow registry at" in text and reason in text, (surface, text[:2000])
    assert answers["deploy API"].json()["code"] == "registry_unavailable"
    assert not Revision.objects.exists() and not AuditEvent.objects.filter(action="deployment.deploy").exists()


def test_a_killed_mlflow_server_is_unreachable_everywhere(client, alice, lead_api, environments, settings, tmp_path):
    client.force_login(alice)
    with mlflow_server(tmp_path) as url:
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = url
        assert client.get(reverse("registry:model_list")).status_code == 200
        _kill_mlflow_server(url)
        answers = _pages_and_deploys(client, lead_api, environments)
    _assert_refused_naming(answers, "cannot be reached")


def test_a_hanging_registry_times_out_everywhere(client, alice, lead_api, environments, settings):
    client.force_login(alice)
    settings.MLFLOW_HTTP_TIMEOUT = 1
    settings.REGISTRY_BREAKER_TIMEOUTS = 100  # the breaker is its own test (test_registry_hanging.py)
    with silent_server() as (port, _):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"http://127.0.0.1:{port}"
        answers = _pages_and_deploys(client, lead_api, environments)
    _assert_refused_naming(answers, "timed out")


@pytest.mark.django_db(transaction=True)
def test_a_rollout_waits_for_a_hanging_registry_and_goes_live_once_it_answers(
    alice, environments, registry, local_dirs, teardown_local, settings
):
    revision = services.deployment_create(actor=alice, model_name=MODEL, model_version=VERSION, environment="dev")
    settings.MLFLOW_HTTP_TIMEOUT = 1
    with silent_server() as (port, _):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"http://127.0.0.1:{port}"
        with pytest.raises(TransientBackendError, match="timed out"):  # the task retries it later
            pipeline.revision_run(revision_id=revision.pk)
    resolve = revision.steps.get(name="resolve")
    assert resolve.status == "pending" and resolve.message.startswith("The MLflow registry at")
    assert "will retry: The MLflow registry at" in resolve.log and "timed out" in resolve.log
    waiting = Revision.objects.get(pk=revision.pk)
    assert waiting.status == "running" and waiting.error == "", "waiting on the registry is not a failure"
    assert not AuditEvent.objects.filter(action__in=["deployment.failed", "deployment.rolled_back"]).exists()

    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = registry.tracking_uri  # it answers again
    assert pipeline.revision_run(revision_id=revision.pk) == "live", "the lease was given back: the retry claims"
    assert Revision.objects.get(pk=revision.pk).attempts == 2
    assert AuditEvent.objects.filter(action="deployment.live").count() == 1
