"""Alerts reach the channels: the alerts app's ``alert_transitioned`` is published as alert.fired,
alert.acknowledged and alert.resolved, with the facts a person needs and a link to the alert."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.alerts import services as alert_services
from apps.alerts.models import Alert
from apps.events import catalogue
from apps.events.models import Channel, Delivery
from tests.alerts.traffic import NOW, path_of, write_burning

pytestmark = pytest.mark.django_db


def test_a_firing_and_acknowledged_alert_is_published_to_the_environments_channel(
    telemetry_dir, deployment, alice, django_capture_on_commit_callbacks
):
    channel = Channel.objects.create(
        name="on-call",
        kind="webhook",
        url="https://hooks.example.test/alerts",
        events=[catalogue.ALERT_FIRED, catalogue.ALERT_ACKNOWLEDGED],
        environment=deployment.environment,
    )
    write_burning(path_of(telemetry_dir, deployment))
    alert_services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("evaluate_alerts", at=NOW.isoformat(), stdout=io.StringIO())
    alert = Alert.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        alert_services.alert_acknowledge(actor=alice, alert=alert)

    deliveries = Delivery.objects.filter(channel=channel).select_related("event").order_by("pk")
    assert [d.event.name for d in deliveries] == [catalogue.ALERT_FIRED, catalogue.ALERT_ACKNOWLEDGED]
    fired, acknowledged = (d.event.payload for d in deliveries)
    assert fired["alert"] == alert.pk and fired["summary"] == alert.summary and fired["state"] == "firing"
    assert fired["url"] == f"/alerts/{alert.pk}/" and fired["threshold"] == 14.4 and fired["by"] == ""
    assert acknowledged["state"] == "acknowledged" and acknowledged["by"] == alice.username
