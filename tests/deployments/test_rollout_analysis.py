"""A rollout's analysis of one interval, over real telemetry files read by the configured (local) source: each
verdict, and messages that name the metric, the revision and the numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.deployments.rollouts.analysis import Check, analyse
from apps.deployments.rollouts.strategy import strategy_parse
from apps.monitoring.drift import psi
from apps.monitoring.models import Baseline
from apps.monitoring.types import BaselineProfile, FeatureProfile
from tests.telemetry import NOW, line, write_lines

pytestmark = pytest.mark.django_db

START, END = NOW - timedelta(minutes=1), NOW
AGE = FeatureProfile(name="age", kind="numeric", edges=[30.0, 40.0], frequencies=[0.3, 0.4, 0.3])
# inputs spread like the baseline: 3 young, 4 middle-aged, 3 older in every 10
AGES = [25, 26, 27, 32, 34, 36, 38, 45, 50, 60]


@pytest.fixture
def path(telemetry_dir):
    return telemetry_dir / "dev--credit-default.jsonl"


@pytest.fixture
def baseline_v2(settings):
    settings.MONITORING_MIN_ROWS = 20
    profile = BaselineProfile(model_name="credit-default", model_version="2", rows=1000, features=[AGE])
    return Baseline.objects.create(
        model_name="credit-default", model_version="2", profile=profile.to_json(), rows=profile.rows
    )


def requests(
    revision: str,
    count: int,
    *,
    errors: int = 0,
    slow: int = 0,
    shadow: bool = False,
    sampled: bool = False,
    ages=None,
    outputs=None,
) -> list[str]:
    """``count`` requests spread over the interval: the first ``errors`` answered 500, the last ``slow`` in 900 ms,
    the others in 20 ms; sampled ones carry an age (``ages[i]``) and the prediction ``outputs(i)``."""
    step = (END - START) / (count + 1)
    version = "1" if revision == "r2" else "2"
    lines = []
    for i in range(count):
        fields = {"revision": revision, "model_version": version, "request_id": f"req-{i}", "latency_ms": 20.0}
        if i < errors:
            fields.update(status=500, error="boom")
        if i >= count - slow:
            fields["latency_ms"] = 900.0
        if shadow:
            fields["shadow"] = True
        if sampled:
            age = (ages or AGES)[i % len(ages or AGES)]
            fields.update(sampled=True, inputs=[{"age": age}], outputs=[outputs(i) if outputs else i % 2])
        lines.append(line(START + step * (i + 1), **fields))
    return lines


def _analyse(deployment, strategy: dict, *, stable: str | None = "r2", start=START):
    return analyse(
        strategy_parse(strategy),
        deployment=deployment,
        candidate="r3",
        stable=stable,
        candidate_version="2",
        start=start,
        end=END,
    )


def _by_metric(analysis, subject: str = "r3") -> dict[str, Check]:
    return {c.metric: c for c in analysis.checks if c.subject == subject}


CANARY = {"type": "canary", "max_drift": None}


def test_too_few_requests_wait_and_judge_nothing_else(path, deployment):
    write_lines(path, requests("r2", 100) + requests("r3", 10, errors=5, slow=5))

    analysis = _analyse(deployment, CANARY)

    assert analysis.verdict == "wait"
    checks = _by_metric(analysis)
    assert checks["requests"] == Check(
        "requests", "r3", 10, 50, "wait", "10 requests on r3, fewer than the 50 needed: waiting"
    )
    # half failed and slow, yet a handful of requests never fails a rollout: reported, not judged
    assert checks["error_rate"].verdict == "skip" and checks["error_rate"].value == 0.5
    assert checks["error_rate"].message == "error rate 50.0% on r3 (5 of 10 requests), not judged below 50 requests"
    assert (checks["p99_ms"].verdict, checks["p99_ms"].value) == ("skip", 900.0)
    assert analysis.failed() == []


def test_errors_above_the_limit_fail_naming_the_rate_and_counts(path, deployment):
    write_lines(path, requests("r2", 100, errors=1) + requests("r3", 50, errors=6))

    analysis = _analyse(deployment, CANARY)

    assert analysis.verdict == "fail"
    (failed,) = analysis.failed()
    assert failed == Check("error_rate", "r3", 0.12, 0.01, "fail", "error rate 12.0% > 1.0% on r3 (6 of 50 requests)")
    assert _by_metric(analysis)["requests"].verdict == "pass"
    assert _by_metric(analysis)["p99_ms"].message == "p99 20.0 ms <= 500 ms on r3 (50 requests)"
    # the stable revision's values, for the chart, judged by nobody
    assert _by_metric(analysis, "r2") == {
        "error_rate": Check("error_rate", "r2", 0.01, 0.01, "skip", "stable r2: error rate 1.0% (1 of 100 requests)"),
        "p99_ms": Check("p99_ms", "r2", 20.0, 500.0, "skip", "stable r2: p99 20.0 ms (100 requests)"),
    }
    assert [c.metric for c in analysis.checks] == ["requests", "error_rate", "p99_ms", "error_rate", "p99_ms"]


def test_a_slow_tail_fails_p99_by_nearest_rank(path, deployment):
    # 60 requests, one in 900 ms: the 99th percentile is the ceil(59.4) = 60th value
    write_lines(path, requests("r2", 60) + requests("r3", 60, slow=1))

    analysis = _analyse(deployment, {**CANARY, "max_p50_ms": 25})

    assert [(c.metric, c.value, c.message) for c in analysis.failed()] == [
        ("p99_ms", 900.0, "p99 900.0 ms > 500 ms on r3 (60 requests)")
    ]
    p50 = _by_metric(analysis)["p50_ms"]
    assert (p50.verdict, p50.value, p50.threshold, p50.message) == (
        "pass",
        20.0,
        25.0,
        "p50 20.0 ms <= 25 ms on r3 (60 requests)",
    )


def test_drifted_inputs_of_the_candidate_fail_with_the_worst_feature(path, deployment, baseline_v2):
    # the stable revision's inputs look like the baseline; the candidate sees only old clients
    write_lines(path, requests("r2", 60, sampled=True) + requests("r3", 60, sampled=True, ages=[80]))

    analysis = _analyse(deployment, {"type": "canary", "max_drift": 0.25})

    (failed,) = analysis.failed()
    expected = psi(AGE.frequencies, [0, 0, 60])
    assert (failed.metric, failed.subject, failed.threshold) == ("drift", "r3", 0.25)
    assert failed.value == pytest.approx(expected)
    assert failed.message == (
        f"drift PSI {expected:.3f} > 0.25 on r3 (worst feature age, 60 sampled rows, baseline of v2)"
    )


def test_inputs_like_the_baseline_pass_over_an_interval_starting_mid_minute(path, deployment, baseline_v2):
    start = START + timedelta(seconds=7)  # one-second bins then; a line just before the start is not counted
    lines = requests("r3", 60, sampled=True)
    lines.append(
        line(start - timedelta(seconds=1), revision="r3", model_version="2", sampled=True, inputs=[{"age": 99}])
    )
    write_lines(path, lines)

    analysis = _analyse(deployment, {"type": "canary", "max_drift": 0.25, "min_requests": 20}, start=start)

    drift = _by_metric(analysis)["drift"]
    assert drift.verdict == "pass"
    counted = int(_by_metric(analysis)["requests"].value)
    assert counted < 60  # the requests of the first seven seconds are outside
    assert f"{counted} sampled rows" in drift.message and drift.value < 0.25
    assert analysis.verdict == "pass"


def test_too_few_sampled_rows_skip_drift_with_the_numbers(path, deployment, baseline_v2):
    write_lines(path, requests("r3", 55) + requests("r3", 5, sampled=True, ages=[80]))

    analysis = _analyse(deployment, {"type": "canary", "max_drift": 0.25}, stable=None)

    drift = _by_metric(analysis)["drift"]
    assert (drift.verdict, drift.value) == ("skip", None)
    assert drift.message == "too few sampled rows of v2 on r3 to judge drift (5 in the best-covered feature, 20 needed)"
    assert analysis.verdict == "pass"
    assert {c.subject for c in analysis.checks} == {"r3"}  # no stable revision: nothing to compare with


def test_a_version_without_a_baseline_skips_drift(path, deployment, registry):
    write_lines(path, requests("r3", 50, sampled=True))

    analysis = analyse(
        strategy_parse({"type": "canary"}),
        deployment=deployment,
        candidate="r3",
        stable=None,
        candidate_version="99",
        start=START,
        end=END,
    )

    drift = _by_metric(analysis)["drift"]
    assert drift.verdict == "skip" and drift.message.startswith("no drift baseline for credit-default v99: ")


def test_a_shadow_that_agrees_passes_every_check(path, deployment, baseline_v2):
    stable = requests("r2", 60, sampled=True)
    mirrored = requests("r3", 60, shadow=True, sampled=True)  # the same request ids, the same predictions
    write_lines(path, stable + mirrored)

    analysis = _analyse(deployment, {"type": "shadow"})

    assert analysis.verdict == "pass"
    assert [(c.metric, c.subject, c.verdict) for c in analysis.checks] == [
        ("requests", "r3", "pass"),
        ("error_rate", "r3", "pass"),
        ("p99_ms", "r3", "pass"),
        ("drift", "r3", "pass"),
        ("agreement", "r3", "pass"),
        ("error_rate", "r2", "skip"),
        ("p99_ms", "r2", "skip"),
    ]
    checks = _by_metric(analysis)
    assert checks["requests"].message == "60 requests on r3, 60 mirrored (at least 50 needed)"
    assert checks["agreement"].value == 1.0
    assert checks["agreement"].message == (
        "agreement 100.0% >= 99.0% on r3 vs r2 (60 of 60 mirrored requests predicted the same)"
    )


def test_a_shadow_that_predicts_otherwise_fails_agreement(path, deployment):
    stable = requests("r2", 60, sampled=True)
    mirrored = requests("r3", 60, shadow=True, sampled=True, outputs=lambda i: 7 if i < 3 else i % 2)
    write_lines(path, stable + mirrored)

    analysis = _analyse(deployment, {"type": "shadow", "max_drift": None})

    (failed,) = analysis.failed()
    assert (failed.metric, failed.value, failed.threshold) == ("agreement", 0.95, 0.99)
    assert failed.message == (
        "agreement 95.0% < 99.0% on r3 vs r2 (57 of 60 mirrored requests predicted the same; "
        "largest numeric difference 7)"
    )


def test_agreement_is_skipped_when_no_mirrored_request_was_compared(path, deployment):
    write_lines(path, requests("r2", 60) + requests("r3", 60, shadow=True))  # nothing sampled

    analysis = _analyse(deployment, {"type": "blue_green", "max_drift": None})

    agreement = _by_metric(analysis)["agreement"]
    assert (agreement.verdict, agreement.value) == ("skip", None)
    assert agreement.message == "no mirrored request was sampled on both r2 and r3: agreement not measured"
    assert analysis.verdict == "pass"


def test_agreement_is_not_judged_on_fewer_compared_requests_than_min_compared(path, deployment):
    stable = requests("r2", 5, sampled=True, outputs=lambda i: 7)  # five sampled on both, all predicted otherwise
    write_lines(path, stable + requests("r3", 60, shadow=True, sampled=True))

    analysis = _analyse(deployment, {"type": "shadow", "max_drift": None})

    agreement = _by_metric(analysis)["agreement"]
    assert (agreement.verdict, agreement.value) == ("skip", 0.0)
    assert agreement.message == (
        "only 5 mirrored requests were sampled on both r2 and r3 (20 needed): agreement not judged "
        "(0 predicted the same)"
    )
    assert analysis.verdict == "pass"
    # With a lower minimum the same five requests are judged, and fail.
    (failed,) = _analyse(deployment, {"type": "shadow", "max_drift": None, "min_compared": 5}).failed()
    assert (failed.metric, failed.value) == ("agreement", 0.0)


def test_a_canary_compares_no_predictions(path, deployment):
    write_lines(path, requests("r2", 60, sampled=True) + requests("r3", 60, sampled=True))
    analysis = _analyse(deployment, CANARY)
    assert "agreement" not in _by_metric(analysis)
