"""Per revision over an exact interval, what a rollout's analysis reads: ``revision_windows`` and ``agreement``, from
real telemetry files (the scoring server's own writer where it can, else lines in its documented schema) and from
Azure Monitor through the real SDK over HTTPS (the KQL sent, the answer parsed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from scoring.telemetry import Telemetry

from apps.monitoring.agreement import TOLERANCE, outputs_agree
from apps.monitoring.sources.azure_monitor import AzureMonitorTelemetrySource, kql_string
from apps.monitoring.sources.local import LocalTelemetrySource
from apps.monitoring.types import BaselineProfile, FeatureProfile
from tests.emulators.log_analytics import FakeCredential, LogAnalyticsEmulator, table
from tests.telemetry import NOW, line, write_lines

pytestmark = pytest.mark.django_db

START, END = NOW - timedelta(minutes=1), NOW
EVIL = 'r9" or true or "'


@pytest.fixture
def path(telemetry_dir):
    return telemetry_dir / "dev--credit-default.jsonl"


@pytest.fixture
def local(telemetry_dir) -> LocalTelemetrySource:
    return LocalTelemetrySource(telemetry_dir=telemetry_dir)


# ---------------------------------------------------------------------------- local: windows
def test_each_revision_counts_its_lines_inside_the_interval_only(local, path, deployment):
    lines = []
    # r1, stable: 100 requests 1..100 ms, 2 server errors and a refusal (a 4xx is no error)
    for i in range(1, 101):
        status = 503 if i in (7, 8) else 400 if i == 9 else 200
        lines.append(line(START + timedelta(milliseconds=500 * i), revision="r1", latency_ms=float(i), status=status))
    # r2, candidate: 20 answered to clients and 30 mirrored copies, 10..500 ms
    for i in range(50):
        lines.append(
            line(START + timedelta(seconds=i), revision="r2", latency_ms=10.0 * (i + 1), shadow=i >= 20, status=200)
        )
    lines += [
        line(START - timedelta(milliseconds=1), revision="r2", latency_ms=9999.0, status=500),  # just before
        line(END, revision="r2", latency_ms=9999.0, status=500),  # the end is excluded
        line(START + timedelta(seconds=5), revision="r3", latency_ms=1.0),  # not asked for
    ]
    write_lines(path, lines)

    windows = local.revision_windows(deployment, start=START, end=END, revisions=["r2", "r1", "r7"])

    assert list(windows) == ["r2", "r1", "r7"]
    r1, r2, r7 = windows["r1"], windows["r2"], windows["r7"]
    # nearest rank: p50 of 100 values is the 50th, p99 the 99th
    assert (r1.requests, r1.errors, r1.shadow, r1.p50, r1.p99) == (100, 2, 0, 50.0, 99.0)
    assert r1.error_rate == 0.02
    # 50 values 10..500: p50 is the 25th (250), p99 the ceil(49.5) = 50th (500)
    assert (r2.requests, r2.errors, r2.shadow, r2.p50, r2.p99) == (50, 0, 30, 250.0, 500.0)
    assert (r7.requests, r7.errors, r7.shadow, r7.p50, r7.p99, r7.error_rate) == (0, 0, 0, None, None, None)


def test_lines_of_the_real_scoring_writer_are_counted(local, path, deployment):
    before = datetime.now(UTC) - timedelta(seconds=1)
    for revision, latencies in (("r1", [5.0, 6.0, 7.0]), ("r2", [40.0, 900.0])):
        writer = Telemetry(
            path=str(path),
            sample_rate=1.0,
            max_rows=10,
            deployment="credit-default",
            model_name="credit-default",
            model_version="1",
            revision=revision,
        )
        for i, ms in enumerate(latencies):
            writer.record(
                request_id=f"{revision}-{i}",
                route="/invocations",
                status=500 if ms > 500 else 200,
                latency_s=ms / 1000,
                rows=1,
                columns=["age"],
                inputs=[[30 + i]],
                outputs=[0],
            )
        writer.close()
    after = datetime.now(UTC) + timedelta(seconds=1)

    windows = local.revision_windows(deployment, start=before, end=after, revisions=["r1", "r2"])
    assert [(w.requests, w.errors, w.p50, w.p99) for w in windows.values()] == [(3, 0, 6.0, 7.0), (2, 1, 40.0, 900.0)]
    assert (
        local.revision_windows(deployment, start=after, end=after + timedelta(hours=1), revisions=["r1"])["r1"].requests
        == 0
    )


# ---------------------------------------------------------------------------- the agreement rule
@pytest.mark.parametrize(
    ("stable", "candidate", "same", "difference"),
    [
        ([0, 1], [0, 1], True, 0.0),
        ([0, 1], [0.0, 1.0], True, 0.0),  # a label 1 written as 1.0 is the same number
        (["yes"], ["no"], False, None),
        ([0.8], [0.8 + TOLERANCE / 2], True, pytest.approx(TOLERANCE / 2)),
        ([0.8], [0.8 + TOLERANCE * 2], False, pytest.approx(TOLERANCE * 2)),
        ([1500.0], [1500.001], True, pytest.approx(0.001)),  # relative beyond 1: 1e-6 of 1500 is 0.0015
        ([{"label": 1, "p": 0.9}], [{"p": 0.9, "label": 1}], True, 0.0),
        ([{"label": 1, "p": 0.9}], [{"label": 1, "p": 0.7}], False, pytest.approx(0.2)),
        ([{"label": 1}], [{"label": 1, "p": 0.7}], False, 0.0),  # another field
        ([0, 1], [0], False, 0.0),  # another number of rows
        ([True], [1], False, None),  # a boolean is no number
        (["1"], [1], False, None),
    ],
)
def test_predictions_agree_by_the_documented_rule(stable, candidate, same, difference):
    assert outputs_agree(stable, candidate) == (same, difference)


# ---------------------------------------------------------------------------- local: agreement
def _pair(request_id: str, stable_outputs, candidate_outputs, *, at: datetime = START) -> list[str]:
    lines = []
    if stable_outputs is not None:
        lines.append(
            line(at, revision="r1", request_id=request_id, sampled=True, inputs=[{"age": 1}], outputs=stable_outputs)
        )
    if candidate_outputs is not None:
        lines.append(
            line(
                at + timedelta(milliseconds=3),
                revision="r2",
                model_version="2",
                request_id=request_id,
                shadow=True,
                sampled=True,
                inputs=[{"age": 1}],
                outputs=candidate_outputs,
            )
        )
    return lines


def test_agreement_joins_the_sampled_lines_by_request_id(local, path, deployment):
    second = timedelta(seconds=1)
    lines = [
        *_pair("equal", [0, 1], [0, 1]),
        *_pair("label", ["yes"], ["no"], at=START + second),
        *_pair("close", [0.8], [0.8000004], at=START + 2 * second),
        *_pair("frame", [{"label": 1, "p": 0.9}], [{"label": 1, "p": 0.7}], at=START + 3 * second),
        *_pair("rows", [0, 1], [0], at=START + 4 * second),
        *_pair("stable only", [1], None),
        *_pair("candidate only", None, [1]),
        *_pair("outside", [1], [0], at=START - second),
        # a retried request id counts once, its earliest line: this later disagreement is not compared
        line(START + 30 * second, revision="r1", request_id="equal", sampled=True, inputs=[{}], outputs=[9, 9]),
        # the candidate's own client traffic (a canary) is not a mirrored copy
        line(START, revision="r2", request_id="stable only", sampled=True, inputs=[{"age": 1}], outputs=[1]),
        # unsampled lines carry no predictions, and an error carries no outputs
        line(START, revision="r2", request_id="candidate only", shadow=True),
        line(START, revision="r1", request_id="candidate only", status=500, error="boom", sampled=True, inputs=[{}]),
    ]
    write_lines(path, lines)

    result = local.agreement(deployment, stable="r1", candidate="r2", start=START, end=END)

    assert (result.compared, result.equal) == (5, 2)  # equal and close agree; label, frame and rows do not
    assert result.rate == 0.4
    assert result.max_abs_difference == pytest.approx(0.2)  # the frame's probabilities; labels are not numbers here
    nothing = local.agreement(deployment, stable="r1", candidate="r2", start=END, end=END + timedelta(minutes=1))
    assert (nothing.compared, nothing.equal, nothing.max_abs_difference, nothing.rate) == (0, 0, None, None)


def test_drift_counts_of_one_revision_include_its_mirrored_copies(local, path, deployment):
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version="1",
        rows=10,
        features=[FeatureProfile(name="age", kind="numeric", edges=[30.0], frequencies=[0.5, 0.5])],
    )
    when = START + timedelta(seconds=10)
    write_lines(
        path,
        [
            line(when, revision="r1", sampled=True, inputs=[{"age": 20}, {"age": 25}]),
            line(when, revision="r2", sampled=True, inputs=[{"age": 50}]),
            line(when, revision="r2", shadow=True, sampled=True, inputs=[{"age": 60}]),
        ],
    )
    minute = timedelta(minutes=1)
    everyone = local.drift_counts(deployment, minute, minute, baseline, end=END)
    r2 = local.drift_counts(deployment, minute, minute, baseline, end=END, revision="r2")
    assert everyone.counts == {"age": {START: [2, 2]}}
    assert r2.counts == {"age": {START: [0, 2]}}


# ---------------------------------------------------------------------------- Azure Monitor
@pytest.fixture
def emulator(tmp_path):
    em = LogAnalyticsEmulator(tmp_path).start()
    yield em
    em.stop()


@pytest.fixture
def azure(emulator) -> AzureMonitorTelemetrySource:
    return AzureMonitorTelemetrySource(
        workspace_id="ws", endpoint=emulator.url, credential=FakeCredential(), connection_verify=emulator.ca
    )


WINDOW_COLUMNS = [
    ("revision", "string"),
    ("requests", "long"),
    ("errors", "long"),
    ("shadow", "long"),
    ("percentile_latency_50", "real"),
    ("percentile_latency_99", "real"),
]


def test_azure_windows_are_one_summarize_by_revision_over_the_exact_interval(emulator, azure, deployment):
    answer = table(
        WINDOW_COLUMNS,
        [["r1", 100, 2, 0, 50.0, 99.0], ["r2", 50, 0, 30, 250.0, 500.0], ["other", 5, 5, 0, 1.0, 1.0]],
    )
    emulator.answers.append((200, {"tables": [answer]}, {}))
    start = START + timedelta(milliseconds=250)

    windows = azure.revision_windows(deployment, start=start, end=END, revisions=["r2", "r1", EVIL])

    (request,) = emulator.requests
    query = request["body"]["query"]
    assert request["body"]["timespan"] == "2026-11-27T02:59:00.250Z/2026-11-27T03:00:00.000Z"
    assert (
        "| where TimeGenerated >= datetime(2026-11-27T02:59:00.250000Z) and "
        "TimeGenerated < datetime(2026-11-27T03:00:00.000000Z)"
    ) in query
    assert f'| where revision in ("r2", "r1", {kql_string(EVIL)})' in query
    assert '"r9\\" or true or \\""' in query
    assert 'mirrored = tobool(m["shadow"])' in query
    assert (
        "| summarize requests = count(), errors = countif(status >= 500), shadow = countif(mirrored == true), "
        "percentiles(latency, 50, 99) by revision"
    ) in query
    assert [(w.revision, w.requests, w.errors, w.shadow, w.p50, w.p99) for w in windows.values()] == [
        ("r2", 50, 0, 30, 250.0, 500.0),
        ("r1", 100, 2, 0, 50.0, 99.0),
        (EVIL, 0, 0, 0, None, None),
    ]


def test_azure_agreement_is_one_join_on_request_id_compared_in_the_workspace(emulator, azure, deployment):
    columns = [("compared", "long"), ("equal", "long"), ("max_abs_difference", "real")]
    emulator.answers.append((200, {"tables": [table(columns, [[5, 2, 0.2]])]}, {}))

    result = azure.agreement(deployment, stable="r1", candidate=EVIL, start=START, end=END)

    query = emulator.requests[0]["body"]["query"]
    assert 'mirrored = coalesce(tobool(m["shadow"]), false), outputs = m["outputs"]' in query
    assert '| where gettype(outputs) == "array" and array_length(outputs) > 0;' in query
    assert 'let stable_lines = lines | where revision == "r1" and not(mirrored)' in query
    assert f"let candidate_lines = lines | where revision == {kql_string(EVIL)} and mirrored" in query
    assert "| summarize arg_min(TimeGenerated, outputs) by request_id | project request_id, a = outputs;" in query
    assert "| join kind=inner candidate_lines on request_id" in query
    assert "| mv-expand with_itemindex=i x = a" in query
    assert f"d <= {'real(1e-06)'} * max_of(1.0, abs(todouble(xv)), abs(todouble(yv)))" in query
    assert query.rstrip().endswith(
        "| summarize compared = count(), equal = countif(agreeing == cells and rows_a == rows_b),"
        " max_abs_difference = max(largest)"
    )
    assert (result.compared, result.equal, result.max_abs_difference) == (5, 2, 0.2)


def test_azure_agreement_without_joined_requests_compares_nothing(emulator, azure, deployment):
    columns = [("compared", "long"), ("equal", "long"), ("max_abs_difference", "real")]
    emulator.answers.append((200, {"tables": [table(columns, [[0, 0, None]])]}, {}))
    result = azure.agreement(deployment, stable="r1", candidate="r2", start=START, end=END)
    assert (result.compared, result.equal, result.max_abs_difference, result.rate) == (0, 0, None, None)


def test_azure_drift_counts_of_one_revision_filter_it_escaped(emulator, azure, deployment):
    baseline = BaselineProfile(
        model_name="credit-default",
        model_version="1",
        rows=10,
        features=[FeatureProfile(name="age", kind="numeric", edges=[30.0], frequencies=[0.5, 0.5])],
    )
    azure.drift_counts(deployment, timedelta(minutes=1), timedelta(minutes=1), baseline, end=END, revision=EVIL)
    query = emulator.requests[0]["body"]["query"]
    assert f'| where tostring(m["revision"]) == {kql_string(EVIL)}' in query
