"""The Channels and Deliveries pages do what the API does, through the same services (parity), for the same
people; the lost-delivery requeue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.events import catalogue, services
from apps.events.models import Channel, Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def dave_client(client, dave):
    client.force_login(dave)
    return client


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)


def test_viewers_get_no_channel_pages_and_no_nav_entry(carol_client):
    assert carol_client.get("/channels/").status_code == 403
    assert carol_client.get("/deliveries/").status_code == 403
    assert b'href="/channels/"' not in carol_client.get("/models/").content


def test_an_admin_adds_edits_and_deletes_a_channel_from_the_page(dave_client, environments, settings):
    settings.EVENTS_ALLOW_PRIVATE_URLS = True
    form = {
        "name": "Ops mail",
        "kind": "email",
        "environment": "",
        "recipients": "ops@example.com; ml@example.com",
        "events": [catalogue.ALERT_FIRED, catalogue.REVISION_FAILED],
    }
    assert dave_client.post("/channels/", form).status_code == 302
    channel = Channel.objects.get()
    assert (channel.environment, channel.recipients) == (None, ["ops@example.com", "ml@example.com"])
    page = dave_client.get("/channels/").content.decode()
    assert "Ops mail" in page and "ops@example.com" in page
    bad = dave_client.post("/channels/", {**form, "recipients": "not-an-address"})
    assert bad.status_code == 400 and "is not an email address" in bad.content.decode()
    edit = {"enabled": "", "events": [catalogue.ALERT_FIRED]}
    assert dave_client.post(f"/channels/{channel.pk}/edit/", edit).status_code == 302
    channel.refresh_from_db()
    assert (channel.enabled, channel.events) == (False, [catalogue.ALERT_FIRED])
    assert dave_client.post(f"/channels/{channel.pk}/delete/").status_code == 302
    assert not Channel.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="channel.").order_by("id").values_list("action", "source")
    )
    assert actions == [("channel.create", "ui"), ("channel.update", "ui"), ("channel.delete", "ui")]


def test_resend_from_the_page_queues_a_new_delivery(dave_client, dave, django_capture_on_commit_callbacks):
    Channel.objects.create(name="hook", kind="slack", url="https://hooks.example.test/x", events=["alert.fired"])
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(catalogue.ALERT_FIRED, {"summary": "error rate above 5%"})
    first = Delivery.objects.get()
    listing = dave_client.get("/deliveries/?status=pending").content.decode()
    assert "error rate above 5%" in listing and f'id="delivery-{first.pk}"' in listing
    response = dave_client.post(f"/deliveries/{first.pk}/resend/")
    resent = Delivery.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/deliveries/{resent.pk}/" and resent.resend_of == first
    assert AuditEvent.objects.get(action="delivery.resend").source == "ui"


def test_pending_deliveries_whose_task_was_lost_are_queued_again(dave, django_capture_on_commit_callbacks, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr(
        "apps.events.tasks.deliver.apply_async", lambda kwargs, **_: queued.append(kwargs["delivery_id"])
    )
    Channel.objects.create(name="hook", kind="slack", url="https://hooks.example.test/x", events=["alert.fired"])
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(catalogue.ALERT_FIRED, {"summary": "lost"})
        services.publish(catalogue.ALERT_FIRED, {"summary": "fresh"})
    lost, fresh = Delivery.objects.order_by("id")
    Delivery.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliveries_requeue() == 1
    assert queued == [lost.pk]
