"""A real Celery worker process, on real Redis and on the embedded SQLite broker of `make run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse
from kombu import pools

from apps.common.models import WorkerHeartbeat
from controlplane.celery import app as celery_app
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _checks(response) -> dict:
    return {check.name: check for check in response.context["checks"]}


def _wait_for_heartbeat(log: Path) -> WorkerHeartbeat:
    return wait_for(lambda: WorkerHeartbeat.objects.first(), timeout=60, what="a heartbeat", log=log)


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
    with running_worker(log, broker_url=broker_url) as process:
        yield process, log


def test_the_status_page_queues_a_heartbeat_that_a_real_worker_runs(worker, carol_client, registry):
    process, log = worker
    first = carol_client.get(reverse("status"))
    assert first.status_code == 200
    beat = _wait_for_heartbeat(log)
    assert beat.worker
    page = carol_client.get(reverse("status"))
    checks = _checks(page)
    assert list(checks) == ["Database", "MLflow registry", "Task broker", "Cache", "Worker"]
    assert checks["Worker"].ok and b"alive" in page.content
    assert checks["MLflow registry"].ok and checks["Task broker"].ok


def test_the_status_page_says_when_the_broker_is_down(carol_client, registry, settings):
    settings.CELERY_BROKER_URL = "redis://:pw@127.0.0.1:9/0"
    _use_broker(settings.CELERY_BROKER_URL)
    try:
        response = carol_client.get(reverse("status"))
    finally:
        _use_broker(os.environ.get("CELERY_BROKER_URL"))
    assert response.status_code == 200
    broker = _checks(response)["Task broker"]
    assert not broker.ok and broker.error and broker.pill == "bad"
    assert b"unreachable" in response.content and b":pw@" not in response.content
