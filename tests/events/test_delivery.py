"""Delivering to each kind of channel, over real HTTP to a receiver on loopback; retries and what is stored."""

from __future__ import annotations

import logging

import pytest
from django.core import mail

from apps.events import catalogue, services
from apps.events.choices import AttemptOutcome, ChannelKind, DeliveryStatus
from apps.events.models import Channel, Delivery
from apps.events.services import delivery_attempt
from tests.events.helpers import documented_verify

pytestmark = pytest.mark.django_db

SECRET = "s3cret-signing-key-0123456789"


def _channel(dave, kind: str, url: str = "", **extra) -> Channel:
    return services.channel_create(
        actor=dave,
        name=f"{kind} channel",
        kind=kind,
        url=url,
        events=[catalogue.PROMOTION_REQUESTED, catalogue.REVISION_LIVE],
        **extra,
    )


def _published(django_capture_on_commit_callbacks, event=catalogue.REVISION_LIVE, environment=None) -> list[Delivery]:
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(
            event,
            {"summary": "credit-default v2 (r2) in dev is live.", "model": "credit-default", "url": "/revisions/7/"},
            environment=environment,
        )
    return list(Delivery.objects.select_related("channel").order_by("id"))


class TestKinds:
    def test_the_json_webhook_is_signed_and_the_documented_check_verifies_it(
        self, dave, receiver, django_capture_on_commit_callbacks, environments
    ):
        _channel(dave, ChannelKind.WEBHOOK, f"{receiver.url}/hook", secret=SECRET)
        [delivery] = _published(django_capture_on_commit_callbacks, environment=environments["dev"])
        assert delivery_attempt(delivery_id=delivery.pk).outcome == AttemptOutcome.OK
        [got] = receiver.received
        verify = documented_verify()
        assert verify(SECRET, got.headers, got.body)
        assert not verify("another-secret-0123456789", got.headers, got.body)
        assert not verify(SECRET, got.headers, got.body.replace(b"live", b"dead"))
        assert got.headers["X-Modelplane-Event"] == "deployment.revision_live"
        assert got.headers["X-Modelplane-Delivery"] == str(delivery.pk)
        body = got.json
        assert (body["event"], body["environment"], body["delivery"]) == (
            "deployment.revision_live",
            "dev",
            delivery.pk,
        )
        assert body["summary"] == "credit-default v2 (r2) in dev is live."
        assert body["data"]["model"] == "credit-default" and body["url"] is None  # no EVENTS_LINK_BASE_URL

    def test_a_replayed_old_body_fails_the_documented_check(self, dave, receiver, django_capture_on_commit_callbacks):
        _channel(dave, ChannelKind.WEBHOOK, f"{receiver.url}/hook", secret=SECRET)
        [delivery] = _published(django_capture_on_commit_callbacks)
        delivery_attempt(delivery_id=delivery.pk)
        got = receiver.received[0]
        old = {**got.headers, "X-Modelplane-Timestamp": str(int(got.headers["X-Modelplane-Timestamp"]) - 3600)}
        assert not documented_verify()(SECRET, old, got.body)

    def test_teams_gets_an_adaptive_card_in_the_workflows_envelope(
        self, dave, receiver, django_capture_on_commit_callbacks, environments, settings
    ):
        settings.EVENTS_LINK_BASE_URL = "https://modelplane.example.com"
        _channel(dave, ChannelKind.TEAMS, f"{receiver.url}/workflows/abc?sig=xyz")
        [delivery] = _published(django_capture_on_commit_callbacks, environment=environments["dev"])
        assert delivery_attempt(delivery_id=delivery.pk).outcome == AttemptOutcome.OK
        body = receiver.received[0].json
        assert body["type"] == "message" and set(body) == {"type", "attachments"}
        [attachment] = body["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        title, summary, facts = card["body"]
        assert (title["type"], title["text"], title["weight"]) == ("TextBlock", "Deployment revision live", "Bolder")
        assert summary["text"] == "credit-default v2 (r2) in dev is live."
        assert facts["type"] == "FactSet"
        assert {"title": "Environment", "value": "dev"} in facts["facts"]
        assert {"title": "Model", "value": "credit-default"} in facts["facts"]
        assert card["actions"] == [
            {
                "type": "Action.OpenUrl",
                "title": "Open in modelplane",
                "url": "https://modelplane.example.com/revisions/7/",
            }
        ]
        assert receiver.received[0].path == "/workflows/abc?sig=xyz"

    def test_slack_gets_text_and_blocks(self, dave, receiver, django_capture_on_commit_callbacks):
        _channel(dave, ChannelKind.SLACK, f"{receiver.url}/services/T0/B0/x")
        [delivery] = _published(django_capture_on_commit_callbacks)
        delivery_attempt(delivery_id=delivery.pk)
        body = receiver.received[0].json
        assert body["text"] == "Deployment revision live: credit-default v2 (r2) in dev is live."
        header, section, fields = body["blocks"]
        assert header == {"type": "header", "text": {"type": "plain_text", "text": "Deployment revision live"}}
        assert section["text"] == {"type": "mrkdwn", "text": "credit-default v2 (r2) in dev is live."}
        assert {"type": "mrkdwn", "text": "*Model*\ncredit-default"} in fields["fields"]

    def test_email_goes_through_djangos_backend(self, dave, django_capture_on_commit_callbacks):
        _channel(dave, ChannelKind.EMAIL, recipients=["ops@example.com", "ml@example.com"])
        [delivery] = _published(django_capture_on_commit_callbacks)
        assert delivery_attempt(delivery_id=delivery.pk).outcome == AttemptOutcome.OK
        [message] = mail.outbox
        assert message.to == ["ops@example.com", "ml@example.com"]
        assert message.subject == "[modelplane] Deployment revision live: credit-default v2 (r2) in dev is live."
        assert "Model: credit-default" in message.body


class TestRetries:
    def test_500_and_429_are_retried_then_it_succeeds_with_every_attempt_stored(
        self, dave, receiver, django_capture_on_commit_callbacks
    ):
        _channel(dave, ChannelKind.SLACK, f"{receiver.url}/hook")
        receiver.answers += [(500, {}), (429, {"Retry-After": "7"})]
        [delivery] = _published(django_capture_on_commit_callbacks)
        first = delivery_attempt(delivery_id=delivery.pk)
        assert first.outcome == AttemptOutcome.RETRY and 0.1 <= first.retry_in < 0.2  # backoff from 0.1 s
        second = delivery_attempt(delivery_id=delivery.pk)
        assert second.outcome == AttemptOutcome.RETRY and second.retry_in >= 7, "Retry-After is honoured"
        assert delivery_attempt(delivery_id=delivery.pk).outcome == AttemptOutcome.OK
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempt_count, delivery.response_code) == (DeliveryStatus.SUCCEEDED, 3, 200)
        attempts = list(delivery.attempts.values_list("number", "outcome", "response_code"))
        assert attempts == [(1, "retry", 500), (2, "retry", 429), (3, "ok", 200)]
        assert len(receiver.received) == 3
        assert delivery_attempt(delivery_id=delivery.pk).outcome == "skipped", "a delivered delivery is not resent"

    def test_a_refusal_is_final_and_the_attempts_run_out(
        self, dave, receiver, django_capture_on_commit_callbacks, settings
    ):
        settings.EVENTS_DELIVERY_ATTEMPTS = 2
        _channel(dave, ChannelKind.SLACK, f"{receiver.url}/hook")
        receiver.answers += [(404, {}), (503, {}), (503, {})]
        [refused] = _published(django_capture_on_commit_callbacks)
        assert delivery_attempt(delivery_id=refused.pk).outcome == AttemptOutcome.FAILED
        refused.refresh_from_db()
        assert (refused.status, refused.response_code, refused.error) == ("failed", 404, "answered 404")
        [exhausted] = [d for d in _published(django_capture_on_commit_callbacks) if d.pk != refused.pk]
        assert delivery_attempt(delivery_id=exhausted.pk).outcome == AttemptOutcome.RETRY
        assert delivery_attempt(delivery_id=exhausted.pk).outcome == AttemptOutcome.FAILED
        exhausted.refresh_from_db()
        assert exhausted.status == "failed" and exhausted.error == "answered 503 (gave up after 2 attempts)"

    def test_a_connection_refused_is_retried(self, dave, django_capture_on_commit_callbacks):
        from tests.registries import free_port

        _channel(dave, ChannelKind.SLACK, f"http://127.0.0.1:{free_port()}/nobody")
        [delivery] = _published(django_capture_on_commit_callbacks)
        result = delivery_attempt(delivery_id=delivery.pk)
        assert result.outcome == AttemptOutcome.RETRY
        assert delivery.attempts.get().error == "could not connect: ConnectionError"


class TestSecrets:
    def test_a_failing_delivery_logs_the_channel_never_its_url(
        self, dave, receiver, django_capture_on_commit_callbacks, caplog
    ):
        channel = _channel(dave, ChannelKind.SLACK, f"{receiver.url}/services/T0/B0/TOPSECRET")
        receiver.answers.append((500, {}))
        [delivery] = _published(django_capture_on_commit_callbacks)
        with caplog.at_level(logging.DEBUG):
            delivery_attempt(delivery_id=delivery.pk)
        assert f"channel {channel.pk}" in caplog.text and "TOPSECRET" not in caplog.text
        assert "TOPSECRET" not in delivery.attempts.get().error
