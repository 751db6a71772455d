"""Issue 17, fault suite: the PostgreSQL connection dropped under the control plane (a restart, a terminated
backend, an idle-connection reaper, the network). A real gunicorn on the test database:

- a kept connection PostgreSQL closed while idle is replaced before the next request uses it
  (``CONN_HEALTH_CHECKS``): the request answers as usual;
- a connection dropped in the middle of a deploy's transaction answers 503 ``database_unavailable`` (JSON,
  saying to try again), and the transaction is gone whole: no deployment, revision or audit event; the retry with
  the same Idempotency-Key answers 202 and records each once.

And a real Celery worker whose connection drops while it records a rollout step retries (a transient failure)
and finishes the revision once, instead of failing it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
from django.db import connection

from apps.accounts.models import AuditEvent
from apps.deployments.models import Deployment, Revision
from tests.deployments.test_end_to_end import _deploy, _finished, _serves
from tests.faults.embedded import gunicorn
from tests.faults.held import insert_held_once, step_finish_held, terminate_other_sessions
from tests.workers import database_url, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _deploy_call(server, key: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/deployments/",
        json={"model": "credit-default", "version": "2", "environment": "dev"},
        headers={"Authorization": f"Token {server.token}", "Idempotency-Key": key},
        timeout=60,
    )


def test_a_dropped_connection_is_replaced_when_idle_and_answers_503_mid_transaction(registry, tmp_path):
    connection.ensure_connection()
    mine = connection.connection.info.backend_pid
    with gunicorn(tmp_path, registry, workers=1, threads=1, DATABASE_URL=database_url()) as server:
        headers = {"Authorization": f"Token {server.token}"}
        assert requests.get(f"{server.url}/api/v1/deployments/", headers=headers, timeout=30).status_code == 200

        with insert_held_once("accounts_auditevent") as (holder, waiting):
            assert terminate_other_sessions(holder, mine) >= 1  # gunicorn's kept connection, idle
            listing = requests.get(f"{server.url}/api/v1/deployments/", headers=headers, timeout=30)
            assert listing.status_code == 200, listing.text[:500]

            answers: list[requests.Response] = []
            request = threading.Thread(target=lambda: answers.append(_deploy_call(server, "dropped-once")))
            request.start()
            session = wait_for(waiting, timeout=30, what="the deploy's transaction to write its audit event")
            holder.execute("select pg_terminate_backend(%s)", [session])
            request.join(timeout=60)
        dropped = answers[0]
        assert dropped.status_code == 503, dropped.text[:500]
        assert dropped.headers["Content-Type"] == "application/json"
        assert dropped.json()["code"] == "database_unavailable" and "Try again" in dropped.json()["detail"]
        assert not Deployment.objects.exists() and not Revision.objects.exists(), "the transaction is gone whole"
        assert not AuditEvent.objects.filter(action="deployment.deploy").exists()

        retry = _deploy_call(server, "dropped-once")
        assert retry.status_code == 202, retry.text[:500]
        assert _deploy_call(server, "dropped-once").json()["id"] == retry.json()["id"]
    assert Revision.objects.count() == 1 and Deployment.objects.count() == 1
    assert AuditEvent.objects.filter(action="deployment.deploy").count() == 1


def test_a_worker_whose_connection_drops_mid_step_retries_and_finishes_once(
    lead_api, environments, registry, worker_env, teardown_local, tmp_path
):
    log = tmp_path / "worker.log"
    with running_worker(log, env=worker_env):
        with step_finish_held("apply") as (holder, waiting):
            revision_id = _deploy(lead_api, "2", "connection-dropped")["id"]
            session = wait_for(waiting, timeout=120, what="the worker to record apply", log=log)
            holder.execute("select pg_terminate_backend(%s)", [session])
        revision = _finished(lead_api, f"/api/v1/revisions/{revision_id}/", log)
    assert revision["status"] == "live" and revision["attempts"] == 2, revision
    assert "the database connection was lost" in log.read_text()
    assert AuditEvent.objects.filter(action="deployment.live").count() == 1
    assert not AuditEvent.objects.filter(action__in=["deployment.failed", "deployment.rolled_back"]).exists()
    model_dir = Revision.objects.get(pk=revision_id).model_dir
    servers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _serves(p, model_dir)]
    assert len(servers) == 1
