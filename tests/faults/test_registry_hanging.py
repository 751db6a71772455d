"""Issue 17 item 6: a registry that accepts connections and never answers. A page waits one HTTP timeout (no
second try) and says "timed out"; after ``REGISTRY_BREAKER_TIMEOUTS`` of them in a row, pages answer 503 at once
for ``REGISTRY_BREAKER_SECONDS``, and a registry that answers again closes the breaker."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from apps.registry import client as registry_client
from tests.emulators.silent_server import silent_server

pytestmark = pytest.mark.django_db

TIMEOUT = 2


def _timed_get(client, url: str):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def test_a_hanging_registry_times_out_once_per_page_then_the_breaker_answers_at_once(carol_client, settings):
    settings.MLFLOW_HTTP_TIMEOUT = TIMEOUT
    settings.REGISTRY_BREAKER_TIMEOUTS = 2
    settings.REGISTRY_BREAKER_SECONDS = 3
    url = reverse("registry:model_list")
    with silent_server() as (port, accepted):
        settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"http://127.0.0.1:{port}"
        for _ in range(settings.REGISTRY_BREAKER_TIMEOUTS):
            response, took = _timed_get(carol_client, url)
            print(f"page over a hanging registry: {response.status_code} in {took:.2f} s")
            assert response.status_code == 503
            assert "timed out" in response.content.decode() and "connection failed" not in response.content.decode()
            assert TIMEOUT <= took < TIMEOUT * 1.8, "one try of the HTTP timeout, not two"
        tried = len(accepted)
        assert tried == settings.REGISTRY_BREAKER_TIMEOUTS, "one connection per page: no second try"

        response, took = _timed_get(carol_client, url)
        print(f"page with the breaker open: {response.status_code} in {took:.2f} s")
        assert response.status_code == 503 and took < 0.5
        assert "timed out repeatedly" in response.content.decode()
        assert len(accepted) == tried, "the open breaker does not ask the registry"

        time.sleep(settings.REGISTRY_BREAKER_SECONDS)
        response, took = _timed_get(carol_client, url)
        assert response.status_code == 503 and took >= TIMEOUT, "after the pause one page tries again"
        assert len(accepted) == tried + 1


def test_an_answer_closes_the_breaker(carol_client, registry, settings):
    settings.REGISTRY_BREAKER_TIMEOUTS = 1
    client = registry_client.get_client()
    client._breaker.timed_out()
    assert client._breaker.seconds_open() > 0
    response = carol_client.get(reverse("registry:model_list"))
    assert response.status_code == 503 and "timed out repeatedly" in response.content.decode()
    client._breaker.answered()
    assert carol_client.get(reverse("registry:model_list")).status_code == 200
