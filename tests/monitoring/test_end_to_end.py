"""A real deploy of a demo model to the local target, real traffic from simulate_traffic, and the series read
back through the API from the telemetry lines the real scoring server wrote."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.deployments.models import Deployment
from tests.workers import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_traffic_to_a_live_local_deployment_shows_latency_and_drift(
    alice, environments, registry, worker_env, teardown_local, tmp_path, settings
):
    settings.TELEMETRY_SOURCE = "local"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='e2e').key}")
    log = tmp_path / "worker.log"
    env = {**worker_env, "SCORING_TELEMETRY_SAMPLE_RATE": "1"}
    with running_worker(log, env=env):
        response = api.post(
            "/api/v1/deployments/", {"model": "credit-default", "version": "1", "environment": "dev"}, format="json"
        )
        assert response.status_code == 202, response.content
        url = response.json()["url"]
        wait_for(lambda: api.get(url).json()["status"] == "live", timeout=180, what="the rollout", log=log)
        deployment = Deployment.objects.get(model_name="credit-default", environment__name="dev")
        out = io.StringIO()
        call_command("simulate_traffic", deployment.pk, rate=20, seconds=3, rows=3, drift="age", stdout=out)
        assert "Sent 60 requests" in out.getvalue() and "{200: 60}" in out.getvalue(), out.getvalue()

        def latency():
            body = api.get(f"/api/v1/deployments/{deployment.pk}/metrics/latency/?window=1h").json()
            return body if sum(p["requests"] for p in body["points"]) >= 60 else None

        body = wait_for(latency, timeout=20, what="the telemetry lines")
        # 60 of ours, plus the rollout's own smoke request
        assert 60 <= sum(p["requests"] for p in body["points"]) <= 62
        assert all(p["error_rate"] == 0 and p["p50"] > 0 and p["revision"] == "r1" for p in body["points"])

        drift = api.get(f"/api/v1/deployments/{deployment.pk}/metrics/drift/?window=1h")
        assert drift.status_code == 200, drift.content
        features = drift.json()["features"]
        assert features[0]["name"] == "age" and features[0]["level"] == "alert"
        assert 180 <= features[0]["rows"] <= 190
