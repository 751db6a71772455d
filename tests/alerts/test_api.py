"""The alerts API: roles, audit source, error format, Idempotency-Key, filters (answers are checked against the
OpenAPI schema by tests/conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.alerts import services
from apps.alerts.models import Alert, AlertRule, Silence
from tests.alerts.traffic import NOW, path_of, write_burning

pytestmark = pytest.mark.django_db


@pytest.fixture
def firing(telemetry_dir, deployment, alice) -> Alert:
    write_burning(path_of(telemetry_dir, deployment))
    services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    services.evaluate_all(now=NOW)
    return Alert.objects.get()


def test_slos_are_created_by_leads_with_their_burn_rate_rule(lead_api, api_client, deployment, telemetry_dir):
    body = {"deployment": deployment.pk, "kind": "availability", "target": 0.995, "period_days": 28}
    refused = api_client.post("/api/v1/slos/", body, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "change SLOs and alert rules" in refused.json()["detail"]
    created = lead_api.post("/api/v1/slos/", body, format="json")
    assert created.status_code == 201, created.content
    slo = created.json()
    assert (slo["environment"], slo["target"], slo["kind"]) == ("dev", 0.995, "availability")
    assert AlertRule.objects.get(slo_id=slo["id"]).metric == "burn_rate"
    assert AuditEvent.objects.get(action="slo.create").source == "api"
    detail = api_client.get(f"/api/v1/slos/{slo['id']}/").json()
    assert detail["status"] == {
        "requests": 0,
        "bad": 0,
        "attainment": None,
        "budget_left": None,
        "burn_rate_1h": None,
        "requests_1h": 0,
    }
    assert [s["id"] for s in api_client.get(f"/api/v1/slos/?deployment={deployment.pk}").json()["results"]] == [
        slo["id"]
    ]
    latency = lead_api.post("/api/v1/slos/", {**body, "kind": "latency"}, format="json")
    assert latency.status_code == 400 and "latency_threshold_ms" in latency.json()["detail"]
    assert lead_api.delete(f"/api/v1/slos/{slo['id']}/").status_code == 204
    assert not AlertRule.objects.exists()


def test_alert_rules_validate_and_audit(lead_api, deployment):
    missing = lead_api.post(
        "/api/v1/alert-rules/", {"deployment": deployment.pk, "metric": "error_rate"}, format="json"
    )
    assert missing.status_code == 400 and missing.json()["detail"] == "A error_rate rule needs a threshold."
    unknown = lead_api.post("/api/v1/alert-rules/", {"deployment": deployment.pk, "metric": "cpu"}, format="json")
    assert unknown.status_code == 400 and "metric" in unknown.json()["errors"]
    body = {
        "deployment": deployment.pk,
        "metric": "latency_p99",
        "threshold": 250,
        "window_seconds": 600,
        "for_seconds": 120,
    }
    created = lead_api.post("/api/v1/alert-rules/", body, format="json")
    assert created.status_code == 201, created.content
    rule = created.json()
    assert (rule["metric"], rule["threshold"], rule["window_seconds"], rule["for_seconds"]) == (
        "latency_p99",
        250,
        600,
        120,
    )
    assert AuditEvent.objects.get(action="alert_rule.create").source == "api"
    assert lead_api.get(f"/api/v1/alert-rules/{rule['id']}/").json()["id"] == rule["id"]
    assert lead_api.delete(f"/api/v1/alert-rules/{rule['id']}/").status_code == 204


def test_alerts_filter_by_state_and_are_acknowledged_by_leads(firing, api_client, lead_api):
    listed = api_client.get("/api/v1/alerts/?state=firing").json()["results"]
    assert [a["id"] for a in listed] == [firing.pk] and listed[0]["metric"] == "burn_rate"
    assert api_client.get("/api/v1/alerts/?state=resolved").json()["results"] == []
    assert api_client.get("/api/v1/alerts/?state=gone").status_code == 400

    refused = api_client.post(f"/api/v1/alerts/{firing.pk}/ack/", {}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only ML leads and admins of dev may acknowledge alerts; carol is viewer there."
    acked = lead_api.post(f"/api/v1/alerts/{firing.pk}/ack/", {"note": "on it"}, format="json")
    assert acked.status_code == 200, acked.content
    body = acked.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by"] == "alice"
    assert [(t["state"], t["actor"], t["note"]) for t in body["transitions"]] == [
        ("firing", None, body["transitions"][0]["note"]),
        ("acknowledged", "alice", "on it"),
    ]
    again = lead_api.post(f"/api/v1/alerts/{firing.pk}/ack/", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 200 and len(again.json()["transitions"]) == 2
    event = AuditEvent.objects.get(action="alert.acknowledge")
    assert (event.source, event.via, event.actor_name) == ("api", "token", "alice")
    assert lead_api.get("/api/v1/alerts/999999/").status_code == 404


def test_silences_take_an_idempotency_key(lead_api, api_client, deployment):
    until = (timezone.now() + timedelta(hours=3)).isoformat()
    body = {"deployment": deployment.pk, "until": until, "reason": "planned load test"}
    assert api_client.post("/api/v1/silences/", body, format="json").status_code == 403
    first = lead_api.post("/api/v1/silences/", body, format="json", HTTP_IDEMPOTENCY_KEY="silence-1")
    assert first.status_code == 201, first.content
    retry = lead_api.post("/api/v1/silences/", body, format="json", HTTP_IDEMPOTENCY_KEY="silence-1")
    assert retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    reused = lead_api.post(
        "/api/v1/silences/", {**body, "reason": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="silence-1"
    )
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert Silence.objects.count() == 1
    assert AuditEvent.objects.get(action="alert.silence").source == "api"
    both = lead_api.post("/api/v1/silences/", {**body, "rule": 1}, format="json")
    assert both.status_code == 400
    past = lead_api.post("/api/v1/silences/", {**body, "until": "2020-01-01T00:00:00Z"}, format="json")
    assert past.status_code == 400 and past.json()["code"] == "invalid_until"
    assert [s["id"] for s in api_client.get("/api/v1/silences/?active=true").json()["results"]] == [first.json()["id"]]
