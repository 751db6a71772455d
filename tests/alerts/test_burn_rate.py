"""Burn-rate math against hand-computed windows (tests/alerts/traffic.py), through the local source's totals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.alerts.evaluation import BURN_RATE_WINDOWS, burn_rate, burn_rate_decision
from apps.monitoring.sources.local import LocalTelemetrySource
from apps.monitoring.types import RequestTotals
from tests.alerts.traffic import NOW, path_of, write_burning

pytestmark = pytest.mark.django_db

WINDOWS = sorted({w for pair in BURN_RATE_WINDOWS for w in (pair.long, pair.short)})
M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def totals(telemetry_dir, deployment) -> dict[timedelta, RequestTotals]:
    write_burning(path_of(telemetry_dir, deployment))
    answer = LocalTelemetrySource(telemetry_dir=telemetry_dir).request_totals(deployment, WINDOWS, end=NOW)
    return {t.window: t for t in answer}


def test_the_windows_are_the_sre_workbooks():
    assert [(p.long, p.short, p.factor, p.severity) for p in BURN_RATE_WINDOWS] == [
        (H, 5 * M, 14.4, "page"),
        (6 * H, 30 * M, 6.0, "page"),
        (3 * D, 6 * H, 1.0, "ticket"),
    ]


def test_the_source_totals_every_window_as_computed_by_hand(totals):
    assert {w: (t.requests, t.errors) for w, t in totals.items()} == {
        5 * M: (40, 20),
        30 * M: (103, 26),
        H: (190, 35),
        6 * H: (190, 35),
        3 * D: (1190, 35),
    }


def test_burn_rates_match_the_hand_computed_ones(totals):
    rates = {w: burn_rate("availability", 0.99, t) for w, t in totals.items()}
    assert rates[5 * M] == pytest.approx(50.0)
    assert rates[30 * M] == pytest.approx(26 / 103 / 0.01)
    assert rates[H] == pytest.approx(18.421, abs=1e-3)
    assert rates[3 * D] == pytest.approx(2.941, abs=1e-3)


def test_the_fast_pair_pages(totals):
    decision = burn_rate_decision(kind="availability", target=0.99, totals=totals, min_requests=100)
    assert decision.breached is True and decision.severity == "page"
    assert decision.threshold == 14.4 and decision.value == pytest.approx(35 / 190 / 0.01)
    assert "18.4x over 1 h and 50.0x over 5 min" in decision.note


def test_a_looser_target_pages_on_the_six_hour_pair_only_when_the_fast_pair_misses(totals):
    # at 97%: 1 h burns 6.14x (< 14.4, no page), 6 h burns 6.14x and 30 min 8.41x (>= 6): the second pair pages
    decision = burn_rate_decision(kind="availability", target=0.97, totals=totals, min_requests=100)
    assert decision.breached is True and decision.threshold == 6.0 and decision.severity == "page"
    assert decision.value == pytest.approx(35 / 190 / 0.03)


def test_too_few_requests_in_the_short_pairs_leaves_only_the_ticket(totals):
    decision = burn_rate_decision(kind="availability", target=0.99, totals=totals, min_requests=200)
    assert decision.breached is True and decision.severity == "ticket" and decision.threshold == 1.0
    assert decision.value == pytest.approx(35 / 1190 / 0.01)


def test_no_decision_on_too_little_traffic(totals):
    decision = burn_rate_decision(kind="availability", target=0.99, totals=totals, min_requests=5000)
    assert decision.breached is None
    assert decision.note.startswith("Too little traffic to judge: 190 requests in 1 h (at least 5000 needed)")


def test_a_healthy_budget_is_clear():
    quiet = {w: RequestTotals(window=w, requests=1000, errors=1, slow=0) for w in WINDOWS}
    decision = burn_rate_decision(kind="availability", target=0.99, totals=quiet, min_requests=100)
    assert decision.breached is False and decision.value == pytest.approx(0.1)


def test_a_latency_slo_counts_slow_requests(telemetry_dir, deployment):
    from tests.alerts.traffic import write_requests

    # 100 requests in the last 10 minutes, request i takes i ms: 49 are slower than 50 ms (51..99)
    write_requests(path_of(telemetry_dir, deployment), NOW - 10 * M, 100, 6, latency=lambda i: float(i))
    source = LocalTelemetrySource(telemetry_dir=telemetry_dir)
    (hour,) = source.request_totals(deployment, [H], slow_above_ms=50.0, end=NOW)
    assert (hour.requests, hour.slow, hour.errors, hour.p99) == (100, 49, 0, 98.0)
    assert burn_rate("latency", 0.9, hour) == pytest.approx(4.9)
