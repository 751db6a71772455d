"""A real Celery worker process, on real Redis and on the embedded SQLite broker of `make run`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import pools
from django.db import connection
from django.urls import reverse

from apps.common.models import WorkerHeartbeat
from controlplane.celery import app as celery_app

pytestmark = pytest.mark.django_db(transaction=True)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def _start_worker(broker_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": broker_url}
    command = [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "solo", "--loglevel", "INFO"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_heartbeat(process: subprocess.Popen, log: Path, timeout: float = 60) -> WorkerHeartbeat:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = WorkerHeartbeat.objects.first()
        if beat:
            return beat
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.25)
    raise AssertionError(f"no heartbeat within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(params=["redis", "embedded"])
def broker_url(request, tmp_path, settings) -> str:
    if request.param == "redis":
        url = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"
    else:
        url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    settings.CELERY_BROKER_URL = url
    _use_broker(url)
    yield url
    _use_broker(os.environ.get("CELERY_BROKER_URL"))


def _use_broker(url: str | None) -> None:
    """Point this process's publisher at another broker (Celery caches its connection pools)."""
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.update(broker_url=url, broker_write_url=url, broker_read_url=url)


@pytest.fixture
def worker(broker_url, tmp_path):
    log = tmp_path / "worker.log"
    process = _start_worker(broker_url, log)
    yield process, log
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_the_status_page_queues_a_heartbeat_that_a_real_worker_runs(worker, carol_client, registry):
    process, log = worker
    first = carol_client.get(reverse("status"))
    assert first.status_code == 200
    beat = _wait_for_heartbeat(process, log)
    assert beat.worker
    page = carol_client.get(reverse("status"))
    assert page.context["status"].worker_ok and b"alive" in page.content
    assert page.context["status"].registry_ok


def test_the_status_page_says_when_the_broker_is_down(carol_client, registry, settings):
    settings.CELERY_BROKER_URL = "redis://:pw@127.0.0.1:9/0"
    _use_broker(settings.CELERY_BROKER_URL)
    try:
        response = carol_client.get(reverse("status"))
    finally:
        _use_broker(os.environ.get("CELERY_BROKER_URL"))
    assert response.status_code == 200
    assert response.context["broker_error"] and b"unreachable" in response.content and b":pw@" not in response.content
