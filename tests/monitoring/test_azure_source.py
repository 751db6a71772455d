"""The Azure Monitor source with the real azure-monitor-query SDK over HTTPS, against a local endpoint that
answers like the Log Analytics query API."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from apps.monitoring.sources.azure_monitor import AzureMonitorTelemetrySource, kql_string
from apps.monitoring.sources.base import TelemetryError
from apps.monitoring.types import BaselineProfile, FeatureProfile
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator, table
from tests.telemetry import NOW

pytestmark = pytest.mark.django_db

WORKSPACE = "00000000-1111-2222-3333-444444444444"
EVIL = 'evil" | union (SecretTable) | where "x" == "x\\'


@pytest.fixture
def emulator(tmp_path):
    em = LogAnalyticsEmulator(tmp_path).start()
    yield em
    em.stop()


@pytest.fixture
def source(emulator) -> AzureMonitorTelemetrySource:
    return AzureMonitorTelemetrySource(
        workspace_id=WORKSPACE,
        endpoint=emulator.url,
        credential=FakeCredential(),
        connection_verify=emulator.ca,
        retry_backoff_factor=0.01,
    )


@pytest.fixture
def evil_deployment(deployment):
    deployment.model_name = EVIL
    return deployment


LATENCY_COLUMNS = [
    ("t", "datetime"),
    ("percentile_latency_50", "real"),
    ("percentile_latency_95", "real"),
    ("percentile_latency_99", "real"),
    ("requests", "long"),
    ("errors", "long"),
    ("rejected", "long"),
    ("kind", "string"),
    ("revision", "string"),
]


def _latency_answer() -> dict:
    return {
        "tables": [
            table(
                LATENCY_COLUMNS,
                [
                    ["2026-11-27T02:50:00Z", 12.5, 40.0, 80.0, 120, 6, 1, "latency", None],
                    ["2026-11-27T02:51:00Z", 13.0, 41.0, 90.0, 60, 0, 0, "latency", None],
                    ["2026-11-27T02:50:00Z", None, None, None, None, None, None, "revision", None],
                    ["2026-11-27T02:50:00Z", None, None, None, 100, None, None, "revision", "r1"],
                    ["2026-11-27T02:50:00Z", None, None, None, 20, None, None, "revision", "r2"],
                    ["2026-11-27T02:51:00Z", None, None, None, 60, None, None, "revision", "r2"],
                    [None, 12.0, 39.0, 79.0, 100, 6, None, "by_revision", "r1"],
                    [None, 12.9, 40.0, 88.0, 80, 0, None, "by_revision", "r2"],
                ],
            )
        ]
    }


def test_latency_query_is_escaped_aggregated_and_parsed(emulator, source, evil_deployment):
    evil_deployment.environment.namespace = "models-dev"
    emulator.answers.append((200, _latency_answer(), {}))
    counts = source.latency_series(evil_deployment, timedelta(hours=1), timedelta(minutes=1), end=NOW)

    (request,) = emulator.requests
    assert request["path"].startswith(f"/v1/workspaces/{WORKSPACE}/query")
    assert request["headers"]["Authorization"] == "Bearer aad-token"
    query = request["body"]["query"]
    assert request["body"]["timespan"] == "2026-11-27T02:00:00.000Z/2026-11-27T03:00:00.000Z"
    # the hostile model name is one string literal: quotes and the backslash are escaped
    assert 'tostring(m["model"]) == "evil\\" | union (SecretTable) | where \\"x\\" == \\"x\\\\"' in query
    assert kql_string(EVIL) in query
    assert '"x" == "x' not in query.replace('\\"x\\" == \\"x', "")
    # aggregated in the workspace: percentiles per bin and the revision counts, nothing row by row
    assert "ContainerLogV2" in query and 'LogSource == "stdout"' in query
    assert '| where PodNamespace == "models-dev"' in query
    assert "summarize percentiles(latency, 50, 95, 99), requests = count()" in query
    assert "bin(TimeGenerated, 60s)" in query
    assert "summarize requests = count() by t, revision" in query

    assert [
        (b.start.isoformat(), b.requests, b.errors, b.rejected, b.p50, b.p95, b.p99, b.revision) for b in counts.bins
    ] == [
        ("2026-11-27T02:50:00+00:00", 120, 6, 1, 12.5, 40.0, 80.0, "r1"),
        ("2026-11-27T02:51:00+00:00", 60, 0, 0, 13.0, 41.0, 90.0, "r2"),
    ]
    assert counts.warnings == []
    assert [(r.revision, r.requests, r.errors, r.p50, r.p99) for r in counts.revisions] == [
        ("r1", 100, 6, 12.0, 79.0),
        ("r2", 80, 0, 12.9, 88.0),
    ]
    assert 'by revision | extend kind = "by_revision"' in query


def test_drift_query_escapes_feature_names_and_counts_server_side(emulator, source, deployment):
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version='1" or true or "',
        rows=10,
        features=[
            FeatureProfile(name="age", kind="numeric", edges=[30.0, 40.5], frequencies=[0.3, 0.4, 0.3]),
            FeatureProfile(name='sex"] | take 1 //', kind="categorical", categories=['ma"le'], frequencies=[0.6, 0.4]),
        ],
    )
    emulator.answers.append(
        (
            200,
            {
                "tables": [
                    table(
                        [("t", "datetime"), ("f", "int"), ("b", "int"), ("n", "long")],
                        [
                            ["2026-11-27T02:58:00Z", 0, 0, 5],
                            ["2026-11-27T02:58:00Z", 0, 2, 7],
                            ["2026-11-27T02:58:00Z", 1, 1, 3],
                            ["2026-11-27T02:58:00Z", 9, 0, 3],  # unknown feature: ignored
                        ],
                    )
                ]
            },
            {},
        )
    )
    counts = source.drift_counts(deployment, timedelta(hours=1), timedelta(minutes=1), baseline, end=NOW)
    query = emulator.requests[0]["body"]["query"]
    assert 'tostring(m["model_version"]) == "1\\" or true or \\""' in query
    assert 'row["sex\\"] | take 1 //"]' in query
    assert 'tostring(row["sex\\"] | take 1 //"]) == "ma\\"le", 0' in query
    assert 'todouble(row["age"]) < real(30.0), 0, todouble(row["age"]) < real(40.5), 1, 2)' in query
    assert 'mv-expand row = m["inputs"]' in query and "summarize n = count() by t, f, b" in query
    (t,) = counts.counts["age"]
    assert counts.counts["age"][t] == [5, 0, 7]
    assert counts.counts['sex"] | take 1 //'][t] == [0, 3]


def test_partial_results_become_a_warning(emulator, source, deployment):
    answer = _latency_answer()
    answer["error"] = {"code": "PartialError", "message": "Query partially succeeded: result truncated", "details": []}
    emulator.answers.append((200, answer, {}))
    counts = source.latency_series(deployment, timedelta(hours=1), timedelta(minutes=1), end=NOW)
    assert len(counts.bins) == 2
    assert counts.warnings and "partial" in counts.warnings[0].lower()


def test_a_bad_request_is_a_domain_error(emulator, source, deployment):
    emulator.answers.append((400, {"error": {"code": "BadArgumentError", "message": "Syntax error near |"}}, {}))
    with pytest.raises(TelemetryError) as info:
        source.latency_series(deployment, timedelta(hours=1), timedelta(minutes=1), end=NOW)
    assert info.value.status_code == 502
    assert "rejected the query (400)" in info.value.message and "Syntax error" in info.value.message


def test_throttling_is_retried_after_retry_after(emulator, source, deployment):
    emulator.answers.append((429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "1"}))
    emulator.answers.append((200, _latency_answer(), {}))
    began = time.monotonic()
    counts = source.latency_series(deployment, timedelta(hours=1), timedelta(minutes=1), end=NOW)
    assert time.monotonic() - began >= 0.9  # waited as told
    assert len(emulator.requests) == 2 and len(counts.bins) == 2


def test_sampled_rows_for_a_traffic_baseline_are_bounded_and_parsed(emulator, source, deployment):
    columns = [("t", "datetime"), ("row", "dynamic"), ("out", "dynamic")]
    rows = [
        ["2026-11-27T02:10:00Z", '{"age": 31, "sex": "male"}', "1"],
        ["2026-11-27T02:11:00Z", '{"age": 45, "sex": "female"}', '{"label": 0}'],
        ["2026-11-27T02:12:00Z", '"not a row"', "1"],
    ]
    emulator.answers.append((200, {"tables": [table(columns, rows)]}, {}))
    sampled = source.sampled_rows(
        deployment, start=NOW - timedelta(hours=1), end=NOW, model_version='1" or "', limit=5000
    )
    query = emulator.requests[0]["body"]["query"]
    assert 'tostring(m["model_version"]) == "1\\" or \\""' in query
    assert '| mv-expand row = m["inputs"], out = m["outputs"]' in query
    assert "| sample 5000" in query and "| project t = TimeGenerated, row, out" in query
    assert sampled.inputs.to_dict(orient="records") == [{"age": 31, "sex": "male"}, {"age": 45, "sex": "female"}]
    assert sampled.outputs.tolist() == [1, 0]
    assert sampled.times.tolist() == [NOW.timestamp() - 50 * 60, NOW.timestamp() - 49 * 60]
