"""The evaluator end to end on the local source: telemetry written as the scoring server writes it, a pass of
``evaluate_alerts`` fires, the rule's hold time, acknowledging, resolving after recovery, silences, too little
traffic, and drift that says when it has too few sampled rows."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.alerts import services
from apps.alerts.models import Alert, AlertRule
from apps.alerts.signals import alert_transitioned
from apps.common.errors import ConflictError, ForbiddenError
from apps.monitoring.models import Baseline
from tests.alerts.traffic import NOW, path_of, write_burning, write_requests
from tests.telemetry import line, write_lines

pytestmark = pytest.mark.django_db

M = timedelta(minutes=1)


def evaluate(at) -> str:
    out = io.StringIO()
    call_command("evaluate_alerts", at=at.isoformat(), stdout=out)
    return out.getvalue()


@pytest.fixture
def announced():
    seen = []

    def receiver(sender, alert, transition, actor, **kwargs):
        seen.append((alert.pk, transition, actor.username if actor else None))

    alert_transitioned.connect(receiver)
    yield seen
    alert_transitioned.disconnect(receiver)


def test_a_burning_slo_pages_once(telemetry_dir, deployment, alice, announced, django_capture_on_commit_callbacks):
    write_burning(path_of(telemetry_dir, deployment))
    slo = services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    with django_capture_on_commit_callbacks(execute=True):
        assert "1 fired" in evaluate(NOW)
    alert = Alert.objects.get()
    assert (alert.state, alert.severity, alert.threshold) == ("firing", "page", 14.4)
    assert alert.value == pytest.approx(18.421, abs=1e-3)
    assert "credit-default in dev: Availability SLO burning: burn rate 18.4x over 1 h" in alert.summary
    assert alert.rule.slo == slo and [t.state for t in alert.transitions.all()] == ["firing"]
    assert announced == [(alert.pk, "fired", None)]
    # a second pass (the next minute, or an overlapping one) keeps the one alert
    assert "1 firing" in evaluate(NOW + M)
    assert Alert.objects.count() == 1


def test_too_little_traffic_raises_nothing(telemetry_dir, deployment, alice):
    path = path_of(telemetry_dir, deployment)
    write_requests(path, NOW - 4 * M, 40, 5, errors=lambda i: i < 20)  # half fail, but only 40 requests
    services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99)
    rule = services.alert_rule_create(actor=alice, deployment=deployment, metric="error_rate", threshold=0.05)
    assert "2 undecided" in evaluate(NOW)
    assert not Alert.objects.exists()
    rule.refresh_from_db()
    assert rule.last_note == "Too little traffic to judge: 40 requests in 5 min (at least 100 needed)."


def test_a_threshold_rule_fires_after_its_hold_is_acknowledged_and_resolves_after_recovery(
    telemetry_dir, deployment, alice, carol, announced, django_capture_on_commit_callbacks
):
    path = path_of(telemetry_dir, deployment)
    write_requests(path, NOW - 5 * M, 150, 2, errors=lambda i: i % 3 == 0)  # 50 of 150 fail
    rule = services.alert_rule_create(
        actor=alice,
        deployment=deployment,
        metric="error_rate",
        threshold=0.1,
        window_seconds=300,
        for_seconds=60,
        resolve_after_seconds=120,
    )
    assert "1 pending" in evaluate(NOW)  # breached, but not yet held for 60 s
    assert not Alert.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert "1 fired" in evaluate(NOW + M)
    alert = Alert.objects.get(rule=rule)
    # the window [NOW-4m, NOW+1m) holds requests 30..149: 120, of which 40 failed
    assert alert.value == pytest.approx(40 / 120) and alert.fired_at == NOW + M

    with pytest.raises(ForbiddenError, match="Only ML leads and admins of dev may acknowledge alerts; carol is viewer"):
        services.alert_acknowledge(actor=carol, alert=alert)
    with django_capture_on_commit_callbacks(execute=True):
        services.alert_acknowledge(actor=alice, alert=alert, note="looking")
    services.alert_acknowledge(actor=alice, alert=alert)  # again: a no-op
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by == alice
    event = AuditEvent.objects.get(action="alert.acknowledge")
    assert event.source == "system" and event.actor == alice and event.data["note"] == "looking"

    # recovery: 300 good requests from NOW+1m; the condition clears, and stays clear for 120 s
    write_requests(path, NOW + M, 300, 1.8)
    assert "1 clear" in evaluate(NOW + 6 * M)
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    with django_capture_on_commit_callbacks(execute=True):
        assert "1 resolved" in evaluate(NOW + 8 * M)
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at == NOW + 8 * M
    assert [(t.state, t.actor_id) for t in alert.transitions.all()] == [
        ("firing", None),
        ("acknowledged", alice.pk),
        ("resolved", None),
    ]
    assert [t for _, t, _ in announced] == ["fired", "acknowledged", "resolved"]
    with pytest.raises(ConflictError, match="is resolved"):
        services.alert_acknowledge(actor=alice, alert=alert)


def test_a_silence_suppresses_firing(telemetry_dir, deployment, alice, carol):
    path = path_of(telemetry_dir, deployment)
    write_requests(path, NOW - 5 * M, 150, 2, errors=lambda i: i % 3 == 0)
    rule = services.alert_rule_create(actor=alice, deployment=deployment, metric="error_rate", threshold=0.1)
    until = timezone.now() + timedelta(hours=2)
    with pytest.raises(ForbiddenError):
        services.silence_create(actor=carol, deployment=deployment, until=until, reason="deploying")
    silence = services.silence_create(actor=alice, deployment=deployment, until=until, reason="load test")
    assert "1 silenced" in evaluate(NOW)
    assert not Alert.objects.exists()
    rule.refresh_from_db()
    assert rule.last_note.startswith("Silenced until")
    assert AuditEvent.objects.get(action="alert.silence").data["reason"] == "load test"
    # once the silence has ended, the same condition fires
    silence.until = NOW - M
    silence.save()
    assert "1 fired" in evaluate(NOW)


BASELINE = {
    "rows": 1000,
    "features": [{"name": "age", "kind": "numeric", "frequencies": [0.5, 0.5], "edges": [40.0], "categories": []}],
    "prediction": None,
}


def test_drift_decides_only_with_enough_sampled_rows(telemetry_dir, deployment, alice, settings):
    settings.MONITORING_MIN_ROWS = 100
    Baseline.objects.create(model_name="credit-default", model_version="1", rows=1000, profile=BASELINE)
    rule = services.alert_rule_create(
        actor=alice, deployment=deployment, metric="drift", threshold=0.25, window_seconds=3600
    )
    path = path_of(telemetry_dir, deployment)
    old = [line(NOW - 30 * M + i * timedelta(seconds=5), sampled=True, inputs=[{"age": 95}]) for i in range(10)]
    write_lines(path, old)
    assert "1 undecided" in evaluate(NOW)
    rule.refresh_from_db()
    assert rule.last_note == "Not enough sampled rows to judge drift: 10 in the window, at least 100 needed."
    write_lines(
        path, [line(NOW - 20 * M + i * timedelta(seconds=5), sampled=True, inputs=[{"age": 90}]) for i in range(120)]
    )
    assert "1 fired" in evaluate(NOW)
    alert = Alert.objects.get()
    assert "PSI of age" in alert.summary and "130 rows" in alert.summary and alert.value > 0.25


def test_prediction_drift_says_when_the_baseline_has_no_predictions(telemetry_dir, deployment, alice):
    Baseline.objects.create(model_name="credit-default", model_version="1", rows=1000, profile=BASELINE)
    rule = services.alert_rule_create(actor=alice, deployment=deployment, metric="prediction_drift", threshold=0.2)
    evaluate(NOW)
    rule.refresh_from_db()
    assert rule.last_note == "The baseline has no predictions to compare."


def test_the_beat_schedule_runs_the_pass_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["evaluate-alerts"]
    assert entry["task"] == "alerts.evaluate" and entry["schedule"] == 60.0
    assert AlertRule.objects.count() == 0


def test_the_beat_task_runs_one_pass_now(telemetry_dir, deployment, alice):
    from datetime import UTC, datetime

    from apps.alerts import tasks

    now = datetime.now(UTC)
    write_requests(path_of(telemetry_dir, deployment), now - 3 * M, 60, 2, errors=lambda i: i % 2 == 0)
    services.alert_rule_create(actor=alice, deployment=deployment, metric="error_rate", threshold=0.2, min_requests=50)
    assert tasks.evaluate() == {"fired": 1}
    assert tasks.evaluate() == {"firing": 1}  # safe to run again: still the one alert
    assert Alert.objects.get().value == pytest.approx(0.5)


def test_a_failing_listener_does_not_break_the_pass(
    telemetry_dir, deployment, alice, django_capture_on_commit_callbacks
):
    def broken(sender, **kwargs):
        raise RuntimeError("channel down")

    alert_transitioned.connect(broken)
    try:
        write_burning(path_of(telemetry_dir, deployment))
        services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
        with django_capture_on_commit_callbacks(execute=True):
            assert "1 fired" in evaluate(NOW)
    finally:
        alert_transitioned.disconnect(broken)
    assert Alert.objects.get().state == "firing"
