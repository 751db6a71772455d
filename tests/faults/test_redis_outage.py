"""Issue 17 item 1: with Redis (cache and broker) stopped, sign-in and pages work without the cache, the status
page says so, /healthz stays ok while /readyz names the broker, and a deploy answers 202 with its revision
queued; once Redis is back the stuck-revision requeue sends it. A Redis server of the test's own, on its own
port, behind a real gunicorn."""

from __future__ import annotations

import re
import sqlite3
import time

import redis
import requests

from tests.faults.embedded import gunicorn, manage, redis_server
from tests.registries import free_port


def _sign_in(url: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/accounts/login/", timeout=30)
    assert page.status_code == 200, page.text[:300]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{url}/accounts/login/",
        data={"csrfmiddlewaretoken": token, "username": "lena", "password": "x" * 20},
        headers={"Referer": f"{url}/accounts/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:500]
    return session


def test_a_redis_outage_degrades_pages_and_queues_deploys_until_it_is_back(registry, tmp_path):
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    with redis_server(port, tmp_path) as first:
        server_cm = gunicorn(tmp_path, registry, workers=2, threads=2, REDIS_URL=redis_url)
        server = server_cm.__enter__()
    try:
        assert first.poll() is not None  # Redis is down from here on
        session = _sign_in(server.url)
        assert session.get(f"{server.url}/models/", timeout=30).status_code == 200
        status = session.get(f"{server.url}/status/", timeout=30)
        assert status.status_code == 200
        assert "degraded: no cache" in status.text and "unreachable" in status.text

        assert requests.get(f"{server.url}/healthz", timeout=30).status_code == 200
        ready = requests.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["database"] == "ok"
        assert ready.json()["broker"] == "unavailable" and ready.json()["cache"] == "unavailable"

        started = time.monotonic()
        deploy = requests.post(
            f"{server.url}/api/v1/deployments/",
            json={"model": "credit-default", "version": "2", "environment": "dev"},
            headers={"Authorization": f"Token {server.token}"},
            timeout=60,
        )
        assert deploy.status_code == 202, deploy.text[:500]
        assert deploy.json()["status"] == "queued" and time.monotonic() - started < 15
        with sqlite3.connect(tmp_path / "controlplane.sqlite3") as db:
            assert db.execute("select status from deployments_revision").fetchall() == [("queued",)]

        with redis_server(port, tmp_path):
            ready = requests.get(f"{server.url}/readyz", timeout=30)
            assert ready.status_code == 200 and ready.json() == {
                "ready": True,
                "database": "ok",
                "broker": "ok",
                "cache": "ok",
            }
            assert "degraded: no cache" not in session.get(f"{server.url}/status/", timeout=30).text

            def revision_runs() -> list[bytes]:
                return [m for m in redis.Redis(port=port).lrange("celery", 0, -1) if b"deployments.revision_run" in m]

            assert revision_runs() == []  # the deploy was never sent (the status page's heartbeat is)
            # What the beat runs every 30 s; a queued row older than DEPLOY_STUCK_QUEUED_SECONDS is sent again.
            env = {**server.env, "DEPLOY_STUCK_QUEUED_SECONDS": "0"}
            manage(env, "shell", "-c", "from apps.deployments.tasks import requeue_stuck; requeue_stuck()")
            assert len(revision_runs()) == 1
    finally:
        server_cm.__exit__(None, None, None)
