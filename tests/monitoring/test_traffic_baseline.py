"""Baselines from a window of the deployment's own traffic, through the API and the page: leads only, audited,
and a window without (enough) traffic is a 400 that says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse

from apps.accounts.models import AuditEvent
from apps.monitoring.models import Baseline
from tests.telemetry import line, write_lines

pytestmark = pytest.mark.django_db


@pytest.fixture
def samples(telemetry_dir):
    """300 sampled rows of v1 in the last two hours (age ~ N(50, 5), sex 70% female, label 1 in 30%), and 50 rows
    of another version that must not count."""
    rng = np.random.default_rng(4)
    now = datetime.now(UTC)
    ages = rng.normal(50, 5, 300)
    sexes = np.where(rng.random(300) < 0.7, "female", "male")
    labels = (rng.random(300) < 0.3).astype(int)
    lines = [
        line(
            now - timedelta(minutes=110) + timedelta(seconds=i * 20),
            sampled=True,
            inputs=[{"age": float(ages[i]), "sex": str(sexes[i])}],
            outputs=[int(labels[i])],
        )
        for i in range(300)
    ]
    lines += [
        line(now - timedelta(minutes=30), sampled=True, model_version="2", inputs=[{"age": 99.0, "sex": "x"}])
        for _ in range(50)
    ]
    write_lines(telemetry_dir / "dev--credit-default.jsonl", lines)
    return {"ages": ages, "sexes": sexes, "labels": labels}


def _url(deployment) -> str:
    return reverse("monitoring-api:deployment_baseline_from_traffic", kwargs={"pk": deployment.pk})


def test_a_lead_builds_the_baseline_from_the_last_day_through_the_api(lead_api, api_client, deployment, samples):
    assert api_client.post(_url(deployment), {"window": "24h"}, format="json").status_code == 403  # carol
    response = lead_api.post(_url(deployment), {"window": "24h"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["model_name"], body["model_version"], body["source"], body["rows"]) == (
        "credit-default",
        "1",
        "traffic",
        300,
    )
    assert body["prediction"] is True
    profile = Baseline.objects.get(model_name="credit-default", model_version="1").as_profile()
    age, sex = profile.features
    assert age.name == "age" and age.edges == pytest.approx(
        np.quantile(samples["ages"], np.linspace(0, 1, 11)[1:-1]).tolist()
    )
    assert sex.categories[0] == "female" and sex.frequencies[0] == pytest.approx(np.mean(samples["sexes"] == "female"))
    assert profile.prediction.frequencies[profile.prediction.categories.index("1")] == pytest.approx(
        samples["labels"].mean()
    )
    event = AuditEvent.objects.get(action="monitoring.baseline_from_traffic")
    assert event.source == "api" and event.data["rows"] == 300 and event.target_id == "credit-default/1"


def test_a_custom_window_takes_only_its_rows(lead_api, deployment, samples):
    end = datetime.now(UTC) - timedelta(minutes=60)
    start = end - timedelta(hours=3)
    response = lead_api.post(
        _url(deployment), {"window": "custom", "start": start.isoformat(), "end": end.isoformat()}, format="json"
    )
    assert response.status_code == 201, response.content
    assert 140 <= response.json()["rows"] <= 160  # the first 50 minutes of 100, one row per 20 s
    assert response.json()["start"] == start.isoformat()


def test_bad_windows_and_no_traffic_are_clear_400s(lead_api, deployment, telemetry_dir, settings, traffic):
    bad = lead_api.post(_url(deployment), {"window": "custom", "start": "yesterday", "end": "now"}, format="json")
    assert bad.status_code == 400 and "not an ISO 8601 time" in bad.json()["detail"]
    backwards = lead_api.post(
        _url(deployment), {"window": "custom", "start": "2026-11-02T00:00Z", "end": "2026-11-01T00:00Z"}, format="json"
    )
    assert backwards.status_code == 400 and "end after it starts" in backwards.json()["detail"]
    old = lead_api.post(
        _url(deployment), {"window": "custom", "start": "2020-01-01T00:00Z", "end": "2020-01-02T00:00Z"}, format="json"
    )
    assert old.status_code == 400 and old.json()["code"] == "no_traffic"
    assert "No sampled requests of v1" in old.json()["detail"]
    future = datetime.now(UTC) + timedelta(days=1)
    ahead = lead_api.post(
        _url(deployment),
        {"window": "custom", "start": future.isoformat(), "end": (future + timedelta(hours=1)).isoformat()},
        format="json",
    )
    assert ahead.status_code == 400 and "future" in ahead.json()["detail"]
    settings.MONITORING_MIN_ROWS = 1000
    few = lead_api.post(_url(deployment), {"window": "24h"}, format="json")
    assert few.status_code == 400 and few.json()["code"] == "too_little_traffic" and "Only 300" in few.json()["detail"]
    assert lead_api.post(_url(deployment), {"window": "2y"}, format="json").status_code == 400
    assert not Baseline.objects.filter(source="traffic").exists()


def test_the_page_form_is_for_leads_and_uses_the_same_service(client, alice, carol, deployment, samples, registry):
    page = reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})
    action = reverse("monitoring:baseline_from_traffic", kwargs={"pk": deployment.pk})
    client.force_login(carol)
    assert 'id="traffic-baseline-form"' not in client.get(page).content.decode()
    client.post(action, {"traffic-window": "24h"})
    assert not Baseline.objects.filter(source="traffic").exists()

    client.force_login(alice)
    assert 'id="traffic-baseline-form"' in client.get(page).content.decode()
    response = client.post(action, {"traffic-window": "1h", "window": "24h"})
    assert response.status_code == 302 and response["Location"].endswith("?window=24h")
    baseline = Baseline.objects.get(model_name="credit-default", model_version="1")
    assert baseline.source == "traffic" and 140 <= baseline.rows <= 160  # the last hour: 50 of the 100 minutes
    assert "sampled rows of this traffic" in client.get(page).content.decode()
    assert AuditEvent.objects.get(action="monitoring.baseline_from_traffic").source == "ui"

    client.post(
        action, {"traffic-window": "custom", "traffic-start": "2020-01-01T00:00", "traffic-end": "2020-01-01T01:00"}
    )
    assert "Baseline not replaced: No sampled requests" in client.get(page).content.decode()
