"""The Alerts pages: list (firing first, filters), detail (chart, history, acknowledge), a deployment's SLOs and
rules, the SLO card on the monitoring page, and the navigation badge; every form through the same services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.accounts.models import AuditEvent
from apps.alerts import services
from apps.alerts.models import Alert, AlertRule, Silence, Slo
from tests.alerts.traffic import NOW, path_of, write_burning, write_requests

pytestmark = pytest.mark.django_db

M = timedelta(minutes=1)


@pytest.fixture
def alerts(telemetry_dir, deployment, alice) -> tuple[Alert, Alert]:
    """A resolved error-rate alert and, newer than nothing, a firing burn-rate alert."""
    path = path_of(telemetry_dir, deployment)
    write_burning(path)
    rule = services.alert_rule_create(
        actor=alice,
        deployment=deployment,
        metric="error_rate",
        threshold=0.1,
        resolve_after_seconds=60,
        min_requests=20,
    )
    services.evaluate_all(now=NOW)
    write_requests(path, NOW + M, 200, 1.5)
    services.evaluate_all(now=NOW + 6 * M)
    services.evaluate_all(now=NOW + 8 * M)
    services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    services.evaluate_all(now=NOW + 8 * M)
    resolved = Alert.objects.get(rule=rule)
    firing = Alert.objects.get(rule__metric="burn_rate")
    assert (resolved.state, firing.state) == ("resolved", "firing")
    return resolved, firing


def test_the_list_shows_firing_first_and_filters(client, carol, alerts):
    resolved, firing = alerts
    client.force_login(carol)
    page = client.get("/alerts/")
    assert page.status_code == 200
    assert [a.pk for a in page.context["alerts"]] == [firing.pk, resolved.pk]
    assert b'id="firing-badge"' in page.content and b">1</span>" in page.content
    only = client.get("/alerts/?state=resolved&environment=dev&model=credit")
    assert [a.pk for a in only.context["alerts"]] == [resolved.pk]
    assert list(client.get("/alerts/?environment=production").context["alerts"]) == []


def test_the_detail_charts_the_metric_against_the_threshold_and_a_lead_acknowledges(client, carol, alice, alerts):
    resolved, firing = alerts
    client.force_login(carol)
    page = client.get(f"/alerts/{resolved.pk}/")
    figure = page.context["figure"]
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["error rate", "threshold"] and figure["data"][1]["y"] == [0.1, 0.1]
    # C's 40 requests from NOW-4m (one per 5 s, the first 20 fail): 12 of 12 fail in its first minute, 8 of 12 in
    # the second, none after; the recovery's minutes have none either
    rates = dict(zip(figure["data"][0]["x"], figure["data"][0]["y"], strict=True))
    assert rates["2026-11-27T02:56:00+00:00"] == 1.0 and rates["2026-11-27T02:57:00+00:00"] == 8 / 12
    assert rates["2026-11-27T02:58:00+00:00"] == 0.0
    assert b'id="ack-form"' not in client.get(f"/alerts/{firing.pk}/").content  # a viewer is not offered it
    refused = client.post(f"/alerts/{firing.pk}/ack/", {"note": ""}, follow=True)
    assert "may acknowledge alerts" in refused.content.decode()

    client.force_login(alice)
    assert b'id="ack-form"' in client.get(f"/alerts/{firing.pk}/").content
    client.post(f"/alerts/{firing.pk}/ack/", {"note": "mitigating"})
    firing.refresh_from_db()
    assert firing.state == "acknowledged"
    assert AuditEvent.objects.get(action="alert.acknowledge").source == "ui"
    assert client.get("/alerts/").context["firing_alerts"] == 0


def test_a_lead_silences_a_rule_from_the_detail_page(client, alice, alerts):
    _, firing = alerts
    client.force_login(alice)
    response = client.post(
        "/alerts/silences/", {"rule": firing.rule_id, "hours": 2, "reason": "known", "next": f"/alerts/{firing.pk}/"}
    )
    assert response.status_code == 302 and response["Location"] == f"/alerts/{firing.pk}/"
    assert Silence.objects.get().rule_id == firing.rule_id
    assert AuditEvent.objects.get(action="alert.silence").source == "ui"


def test_a_deployments_slos_and_rules_are_managed_on_its_alerts_page(client, alice, carol, deployment, telemetry_dir):
    write_burning(path_of(telemetry_dir, deployment))
    client.force_login(carol)
    assert b'id="slo-add"' not in client.get(f"/deployments/{deployment.pk}/alerts/").content
    client.post(
        f"/deployments/{deployment.pk}/alerts/slos/", {"kind": "availability", "target": 0.99, "period_days": 28}
    )
    assert not Slo.objects.exists()

    client.force_login(alice)
    page = client.get(f"/deployments/{deployment.pk}/alerts/")
    assert b'id="slo-add"' in page.content and b'id="rule-add"' in page.content
    client.post(
        f"/deployments/{deployment.pk}/alerts/slos/", {"kind": "availability", "target": 0.99, "period_days": 28}
    )
    slo = Slo.objects.get()
    client.post(
        f"/deployments/{deployment.pk}/alerts/rules/",
        {"metric": "latency_p99", "threshold": 300, "window_seconds": 300, "for_seconds": 60, "statistic": "psi"},
    )
    assert set(AlertRule.objects.values_list("metric", flat=True)) == {"burn_rate", "latency_p99"}
    # the monitoring page shows the SLO: over its 28 days, 35 of 1190 requests failed
    monitoring = client.get(f"/deployments/{deployment.pk}/monitoring/")
    ((shown, status, error),) = monitoring.context["slos"]
    assert shown == slo and error == ""
    assert status.requests == 1190 and status.bad == 35
    assert status.attainment == pytest.approx(1 - 35 / 1190)
    assert status.budget_left == pytest.approx(1 - (35 / 1190) / 0.01)  # overspent: about -1.94
    assert b'id="slo-table"' in monitoring.content
    rule = AlertRule.objects.get(metric="latency_p99")
    client.post(f"/alerts/rules/{rule.pk}/delete/")
    client.post(f"/alerts/slos/{slo.pk}/delete/")
    assert not AlertRule.objects.exists() and not Slo.objects.exists()
    assert AuditEvent.objects.filter(source="ui", action__in=["slo.delete", "alert_rule.delete"]).count() == 2


def test_the_list_costs_the_same_queries_for_one_alert_or_many(client, carol, alerts, deployment, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(carol)
    client.get("/alerts/")  # warm the session
    with CaptureQueriesContext(connection) as two:
        client.get("/alerts/")
    for threshold in (0.2, 0.3, 0.4):
        services.alert_rule_create(
            actor=alice, deployment=deployment, metric="error_rate", threshold=threshold, min_requests=20
        )
    services.evaluate_all(now=NOW)
    assert Alert.objects.count() == 6  # three new rules fire, and the resolved rule fires again at NOW
    with CaptureQueriesContext(connection) as six:
        client.get("/alerts/")
    assert len(six) == len(two) <= 8
