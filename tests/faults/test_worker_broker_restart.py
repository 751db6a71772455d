"""Issue 17 item 1: a real Celery worker outlives a restart of its Redis broker (a server of the test's own) and
runs the next task without being restarted by hand."""

from __future__ import annotations

import time

import pytest

from apps.common.models import WorkerHeartbeat
from apps.common.tasks import heartbeat
from tests.common.test_worker import _use_broker
from tests.faults.embedded import redis_server
from tests.registries import free_port
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_reconnects_after_the_broker_restarts(tmp_path, settings):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = tmp_path / "worker.log"
    _use_broker(url)
    first_broker = redis_server(port, tmp_path)
    first_broker.__enter__()
    try:
        with running_worker(log, broker_url=url) as worker:
            heartbeat.apply_async()
            wait_for(lambda: WorkerHeartbeat.objects.exists(), timeout=60, what="a first heartbeat", log=log)
            first_broker.__exit__(None, None, None)  # the broker goes away under the running worker ...
            down_since = time.monotonic()
            while time.monotonic() - down_since < 15:  # ... for 15 s
                assert worker.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            WorkerHeartbeat.objects.all().delete()
            with redis_server(port, tmp_path):  # ... and comes back on the same address, empty
                heartbeat.apply_async()
                wait_for(lambda: WorkerHeartbeat.objects.exists(), timeout=90, what="a heartbeat after", log=log)
                assert worker.poll() is None
    finally:
        _use_broker(settings.CELERY_BROKER_URL)
