"""The evaluator against Azure Monitor: the real azure-monitor-query SDK over HTTPS to the local query endpoint,
one KQL query per rule (every window of a burn-rate rule in it), aggregated in the workspace."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.alerts import services
from apps.alerts.models import Alert
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator, table
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db

WORKSPACE = "00000000-1111-2222-3333-444444444444"


@pytest.fixture
def emulator(tmp_path, settings):
    em = LogAnalyticsEmulator(tmp_path).start()
    settings.TELEMETRY_SOURCE = "azure_monitor"
    settings.TELEMETRY_SOURCE_OPTIONS = {
        "azure_monitor": {
            "workspace_id": WORKSPACE,
            "endpoint": em.url,
            "credential": FakeCredential(),
            "connection_verify": em.ca,
            "retry_backoff_factor": 0.01,
        }
    }
    yield em
    em.stop()


def _totals(*rows: tuple[int, int]) -> dict:
    columns = [(f"{kind}_{i}", "long") for i in range(len(rows)) for kind in ("requests", "errors")]
    values = [v for pair in rows for v in pair]
    return {"tables": [table([*columns, ("p99", "real")], [[*values, 120.0]])]}


def test_a_burn_rate_rule_is_one_query_with_every_window(emulator, deployment, alice):
    deployment.environment.namespace = "models-dev"
    deployment.environment.save()
    services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    # 5 min, 30 min, 1 h, 6 h, 3 d: the hand-computed windows of tests/alerts/traffic.py
    emulator.answers.append((200, _totals((40, 20), (103, 26), (190, 35), (190, 35), (1190, 35)), {}))
    report = services.evaluate_all(now=NOW)

    assert list(report.outcomes.values()) == ["fired"]
    (request,) = emulator.requests  # one query for the rule
    assert request["path"].startswith(f"/v1/workspaces/{WORKSPACE}/query")
    assert request["body"]["timespan"] == "2026-11-24T03:00:00.000Z/2026-11-27T03:00:00.000Z"
    query = request["body"]["query"]
    assert query.startswith("ContainerLogV2\n| where TimeGenerated >= datetime(2026-11-24T03:00:00.000000Z)")
    assert '| where PodNamespace == "models-dev"' in query
    assert 'tostring(m["deployment"]) == "credit-default"' in query
    assert '| extend latency = todouble(m["latency_ms"]), status = toint(m["status"])' in query
    assert "| summarize requests_0 = countif(TimeGenerated >= datetime(2026-11-27T02:55:00.000000Z))" in query
    assert "errors_0 = countif(TimeGenerated >= datetime(2026-11-27T02:55:00.000000Z) and status >= 500)" in query
    assert "requests_2 = countif(TimeGenerated >= datetime(2026-11-27T02:00:00.000000Z))" in query
    assert "requests_4 = countif(TimeGenerated >= datetime(2026-11-24T03:00:00.000000Z))" in query
    assert "slow_" not in query  # an availability SLO counts no latency
    assert "p99 = percentile(latency, 99)" in query
    alert = Alert.objects.get()
    assert alert.severity == "page" and alert.value == pytest.approx(35 / 190 / 0.01)


def test_a_latency_slo_counts_slow_requests_in_the_workspace(emulator, deployment, alice):
    services.slo_create(
        actor=alice, deployment=deployment, kind="latency", target=0.9, latency_threshold_ms=250.0, min_requests=10
    )
    services.evaluate_all(now=NOW)
    query = emulator.requests[0]["body"]["query"]
    assert "slow_0 = countif(TimeGenerated >= datetime(2026-11-27T02:55:00.000000Z) and latency > real(250.0))" in query


def test_a_threshold_rule_reads_its_window_and_nothing_fires_on_an_empty_answer(emulator, deployment, alice):
    rule = services.alert_rule_create(
        actor=alice, deployment=deployment, metric="latency_p99", threshold=100.0, window_seconds=600
    )
    assert services.evaluate_all(now=NOW).outcomes == {rule.pk: "undecided"}  # the default answer: no rows
    query = emulator.requests[0]["body"]["query"]
    assert emulator.requests[0]["body"]["timespan"] == "2026-11-27T02:50:00.000Z/2026-11-27T03:00:00.000Z"
    assert "requests_0 = countif(TimeGenerated >= datetime(2026-11-27T02:50:00.000000Z))" in query
    emulator.answers.append((200, _totals((500, 0)), {}))
    assert services.evaluate_all(now=NOW + timedelta(minutes=1)).outcomes == {rule.pk: "fired"}
    assert Alert.objects.get().value == 120.0  # the workspace's p99 against 100 ms


def test_a_refused_query_leaves_the_rule_undecided_with_the_reason(emulator, deployment, alice):
    rule = services.alert_rule_create(actor=alice, deployment=deployment, metric="error_rate", threshold=0.1)
    emulator.answers.append((400, {"error": {"code": "BadArgumentError", "message": "Syntax error near |"}}, {}))
    assert services.evaluate_all(now=NOW).outcomes == {rule.pk: "undecided"}
    rule.refresh_from_db()
    assert rule.last_note.startswith("Not evaluated: Azure Monitor rejected the query (400): Syntax error")
