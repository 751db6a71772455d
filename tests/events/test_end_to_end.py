"""A deploy through the API, run by a real Celery worker on real Redis and PostgreSQL: its events reach a signed
webhook on loopback through the worker, which retries a 500 and a 429 (with Retry-After) and stores each attempt."""

from __future__ import annotations

import pytest

from apps.events import catalogue, services
from apps.events.models import Delivery, DeliveryAttempt
from tests.events.helpers import documented_verify
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "end-to-end-signing-secret"


def test_a_deploys_events_are_delivered_by_the_worker_with_retries(
    lead_api, dave, environments, registry, worker_env, teardown_local, tmp_path, receiver
):
    services.channel_create(
        actor=dave,
        name="ci",
        kind="webhook",
        environment="dev",
        url=f"{receiver.url}/hook",
        secret=SECRET,
        events=[catalogue.REVISION_STARTED, catalogue.REVISION_LIVE],
    )
    receiver.answers += [(500, {}), (429, {"Retry-After": "1"})]
    log = tmp_path / "worker.log"
    env = {**worker_env, "EVENTS_ALLOW_PRIVATE_URLS": "true", "EVENTS_RETRY_BASE_SECONDS": "0.2"}
    with running_worker(log, env=env):
        response = lead_api.post(
            "/api/v1/deployments/", {"model": "credit-default", "version": "1", "environment": "dev"}, format="json"
        )
        assert response.status_code == 202, response.content

        def delivered():
            statuses = list(Delivery.objects.values_list("status", flat=True))
            return len(statuses) == 2 and set(statuses) == {"succeeded"}

        wait_for(delivered, timeout=180, what="both events to be delivered", log=log)

    verify = documented_verify()
    assert all(verify(SECRET, got.headers, got.body) for got in receiver.received)
    delivered_events = {got.json["event"] for got in receiver.received if got is not None}
    assert delivered_events == {"deployment.revision_started", "deployment.revision_live"}
    attempts = sorted(DeliveryAttempt.objects.values_list("response_code", "outcome"))
    assert attempts == [(200, "ok"), (200, "ok"), (429, "retry"), (500, "retry")]
    assert len(receiver.received) == 4
