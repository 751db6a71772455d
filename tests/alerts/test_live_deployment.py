"""A live local deployment of a model that fails or sleeps on some inputs but passes the smoke test: real
requests to its scoring server produce 5xx and slow answers, the telemetry lines the server writes feed an
evaluation pass that fires, a lead acknowledges through the API, the alert resolves after recovery, and a
silence suppresses the next breach."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import mlflow
import pandas as pd
import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from apps.alerts import services
from apps.alerts.models import Alert
from apps.deployments import pipeline
from apps.deployments import services as deployments
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision
from tests.registries import register_pyfunc_version
from tests.workers import wait_for

pytestmark = pytest.mark.django_db


def _register_trouble_model(registry) -> str:
    """A pyfunc (defined here, so it is pickled by value) that doubles ``x``, raises for tag "boom" and sleeps
    ``x`` seconds for tag "slow"; its input example (tags "a", "b") scores fine, so the smoke test passes."""

    class Trouble(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import time as _time

            if (model_input["tag"] == "boom").any():
                raise RuntimeError("boom requested")
            slow = model_input.loc[model_input["tag"] == "slow", "x"]
            if len(slow):
                _time.sleep(float(slow.max()))
            return (model_input["x"] * 2).to_numpy()

    return register_pyfunc_version(
        registry,
        Trouble(),
        model_name="trouble",
        input_example=pd.DataFrame({"x": [1.0, 2.0], "tag": ["a", "b"]}),
    )


def _score(url: str, x: float, tag: str) -> int:
    body = {"dataframe_split": {"columns": ["x", "tag"], "data": [[x, tag]]}}
    return requests.post(f"{url}/invocations", json=body, timeout=30).status_code


def _evaluate(at: datetime | None = None) -> str:
    out = io.StringIO()
    call_command("evaluate_alerts", *(["--at", at.isoformat()] if at else []), stdout=out)
    return out.getvalue()


def test_traffic_to_a_live_deployment_fires_is_acknowledged_resolves_and_is_silenced(
    alice, lead_api, environments, registry, local_dirs, teardown_local, settings, django_capture_on_commit_callbacks
):
    settings.TELEMETRY_SOURCE = "local"
    settings.TELEMETRY_SOURCE_OPTIONS = {"local": {}}
    version = _register_trouble_model(registry)
    revision = deployments.deployment_create(
        actor=alice, model_name="trouble", model_version=version, environment="dev"
    )
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.revision_run(revision_id=revision.pk)
    revision = Revision.objects.select_related("deployment").get(pk=revision.pk)
    assert revision.status == RevisionStatus.LIVE, revision.error
    deployment = revision.deployment
    url = deployment.endpoint_url.rstrip("/")

    errors = services.alert_rule_create(
        actor=alice,
        deployment=deployment,
        metric="error_rate",
        threshold=0.2,
        window_seconds=120,
        min_requests=10,
        resolve_after_seconds=60,
    )
    slow = services.alert_rule_create(
        actor=alice,
        deployment=deployment,
        metric="latency_p99",
        threshold=200,
        window_seconds=120,
        min_requests=10,
        resolve_after_seconds=60,
    )
    # 20 requests: 8 fail inside the model (500), 2 take 0.3 s, 10 are fine
    statuses = [
        _score(url, 0.3 if i < 2 else 1.0, "boom" if i % 5 in (2, 3) else "slow" if i < 2 else "ok") for i in range(20)
    ]
    assert sorted(statuses) == [200] * 12 + [500] * 8
    burst_end = datetime.now(UTC)
    telemetry = settings.TELEMETRY_DIR / f"dev--{deployment.name}.jsonl"
    wait_for(
        lambda: telemetry.exists() and len(telemetry.read_text().splitlines()) >= 21,  # and the smoke request
        timeout=20,
        what="the scoring server's telemetry lines",
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert "2 fired" in _evaluate()
    error_alert, slow_alert = Alert.objects.get(rule=errors), Alert.objects.get(rule=slow)
    assert 8 / 21 <= error_alert.value <= 8 / 20
    assert slow_alert.value >= 300  # the p99 of 20 requests is the slowest but one: a 0.3 s sleep

    acked = lead_api.post(f"/api/v1/alerts/{error_alert.pk}/ack/", {"note": "bad release"}, format="json")
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"

    # recovery: 30 good requests after the burst; once the burst left the 2-minute window the rule is clear, and
    # a minute later (no traffic at all then, which counts as clear) the alert resolves
    time.sleep(0.6)
    assert {_score(url, 1.0, "ok") for _ in range(30)} == {200}
    wait_for(lambda: len(telemetry.read_text().splitlines()) >= 51, timeout=20, what="the recovery's lines")
    cleared = burst_end + timedelta(seconds=120.5)
    assert "2 clear" in _evaluate(cleared)
    assert "2 resolved" in _evaluate(cleared + timedelta(seconds=61))
    error_alert.refresh_from_db()
    assert error_alert.state == "resolved"
    assert [t.state for t in error_alert.transitions.all()] == ["firing", "acknowledged", "resolved"]

    # a silence on the deployment: the next burst is recorded as silenced, and no alert fires
    services.silence_create(
        actor=alice, deployment=deployment, until=timezone.now() + timedelta(hours=1), reason="load test"
    )
    assert {_score(url, 1.0, "boom") for _ in range(12)} == {500}
    wait_for(lambda: len(telemetry.read_text().splitlines()) >= 63, timeout=20, what="the second burst's lines")
    assert "silenced" in _evaluate()
    errors.refresh_from_db()
    assert errors.last_note.startswith("Silenced until")
    assert Alert.objects.count() == 2  # the two of the first burst, both resolved: nothing new fired
    assert not Alert.objects.exclude(state="resolved").exists()
