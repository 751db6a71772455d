"""Per-deployment drift thresholds and uploaded baselines, through the API and the page, leads only, audited."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

from apps.accounts.models import AuditEvent
from apps.monitoring import selectors
from apps.monitoring.models import Baseline
from tests.monitoring.frames import credit_inputs, credit_inputs_csv

pytestmark = pytest.mark.django_db


def _csv() -> bytes:
    return credit_inputs_csv(50)


def test_thresholds_through_the_api(lead_api, api_client, deployment):
    url = f"/api/v1/deployments/{deployment.pk}/monitoring/thresholds/"
    assert api_client.get(url).json() == {"psi_warn": 0.1, "psi_alert": 0.25}
    assert api_client.put(url, {"psi_warn": 0.2, "psi_alert": 0.5}, format="json").status_code == 403  # carol
    bad = lead_api.put(url, {"psi_warn": 0.5, "psi_alert": 0.2}, format="json")
    assert bad.status_code == 400 and "above the warning" in bad.json()["detail"]
    ok = lead_api.put(url, {"psi_warn": 0.2, "psi_alert": 0.5}, format="json")
    assert ok.status_code == 200 and ok.json() == {"psi_warn": 0.2, "psi_alert": 0.5}
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.2, 0.5)
    event = AuditEvent.objects.get(action="monitoring.thresholds_set")
    assert event.actor_name == "alice" and event.source == "api"


def test_baseline_upload_through_the_api(lead_api, api_client, deployment, registry):
    url = f"/api/v1/deployments/{deployment.pk}/monitoring/baseline/"
    upload = {"file": io.BytesIO(_csv())}
    upload["file"].name = "ref.csv"
    assert api_client.post(url, upload, format="multipart").status_code == 403
    upload["file"].seek(0)
    response = lead_api.post(url, upload, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json() == {
        "model_name": "credit-default", "model_version": "1", "source": "upload", "rows": 50, "features": 23
    }  # fmt: skip
    baseline = Baseline.objects.get(model_name="credit-default", model_version="1").as_profile()
    assert [f.name for f in baseline.features] == list(credit_inputs(1).columns)
    assert AuditEvent.objects.filter(action="monitoring.baseline_upload", target_id="credit-default/1").exists()

    junk = io.BytesIO(b"\x00\x01not a table")
    junk.name = "x.bin"
    assert lead_api.post(url, {"file": junk}, format="multipart").status_code == 415  # neither CSV nor Parquet
    unknown = io.BytesIO(_csv())
    unknown.name = "ref.csv"
    assert lead_api.post(url, {"file": unknown, "version": "999"}, format="multipart").status_code == 404


def test_page_forms_for_leads_only(client, alice, carol, deployment, registry):
    page = reverse("monitoring:deployment_monitoring", kwargs={"pk": deployment.pk})
    client.force_login(carol)
    assert 'id="thresholds-form"' not in client.get(page).content.decode()
    response = client.post(
        reverse("monitoring:drift_thresholds_set", kwargs={"pk": deployment.pk}), {"psi_warn": 0.3, "psi_alert": 0.6}
    )
    assert response.status_code == 302
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.1, 0.25)

    client.force_login(alice)
    html = client.get(page).content.decode()
    assert 'id="thresholds-form"' in html and 'id="baseline-form"' in html
    client.post(
        reverse("monitoring:drift_thresholds_set", kwargs={"pk": deployment.pk}),
        {"psi_warn": 0.3, "psi_alert": 0.6, "window": "24h"},
    )
    assert selectors.drift_thresholds_get(deployment=deployment) == (0.3, 0.6)
    upload = io.BytesIO(_csv())
    upload.name = "ref.csv"
    response = client.post(reverse("monitoring:baseline_upload", kwargs={"pk": deployment.pk}), {"file": upload})
    assert response.status_code == 302 and response["Location"].endswith("/monitoring/")
    assert Baseline.objects.get(model_name="credit-default", model_version="1").source == "upload"
    html = client.get(page).content.decode()
    assert "Baseline of v1 replaced from 50 uploaded rows." in html
