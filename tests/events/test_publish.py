"""publish(): after the commit, to the subscribed channels of the environment and the global ones; the events of
real promotion and deploy flows."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.deployments import pipeline
from apps.deployments import services as deployment_services
from apps.events import catalogue, services
from apps.events.choices import AttemptOutcome
from apps.events.models import Channel, Delivery, Event
from apps.promotions import services as promotion_services
from tests.promotions.helpers import MODEL

pytestmark = pytest.mark.django_db


def _channel(name: str, events: list[str], environment=None, enabled: bool = True, url: str = "") -> Channel:
    return Channel.objects.create(
        name=name,
        kind="slack",
        url=url or "https://hooks.example.test/x",
        events=events,
        environment=environment,
        enabled=enabled,
    )


class PublishTests:
    def test_it_reaches_the_environments_channels_and_the_global_ones_only(
        self, environments, django_capture_on_commit_callbacks
    ):
        dev = _channel("dev", [catalogue.REVISION_LIVE], environments["dev"])
        prod = _channel("prod", [catalogue.REVISION_LIVE], environments["production"])
        everywhere = _channel("global", [catalogue.REVISION_LIVE, catalogue.REGISTRY_VERSION_CREATED])
        _channel("other event", [catalogue.REVISION_FAILED])
        _channel("disabled", [catalogue.REVISION_LIVE], enabled=False)
        with django_capture_on_commit_callbacks(execute=True):
            services.publish(catalogue.REVISION_LIVE, {"summary": "live"}, environment=environments["dev"])
            services.publish(catalogue.REGISTRY_VERSION_CREATED, {"summary": "v3"})
        by_event = sorted(Delivery.objects.values_list("event__name", "channel_id"))
        assert by_event == sorted(
            [
                (catalogue.REVISION_LIVE, dev.pk),
                (catalogue.REVISION_LIVE, everywhere.pk),
                (catalogue.REGISTRY_VERSION_CREATED, everywhere.pk),
            ]
        )
        assert not Delivery.objects.filter(channel=prod).exists()
        assert Event.objects.get(name=catalogue.REVISION_LIVE).environment_name == "dev"

    def test_nothing_is_published_when_the_action_rolls_back(self, environments, django_capture_on_commit_callbacks):
        _channel("global", [catalogue.REVISION_LIVE])
        with django_capture_on_commit_callbacks(execute=True):
            try:
                with transaction.atomic():
                    services.publish(catalogue.REVISION_LIVE, {"summary": "live"})
                    raise RuntimeError("the action failed")
            except RuntimeError:
                pass
        assert not Event.objects.exists() and not Delivery.objects.exists()

    def test_the_payload_is_taken_when_published_not_when_sent(self, django_capture_on_commit_callbacks):
        _channel("global", [catalogue.REVISION_LIVE])
        payload = {"summary": "first"}
        with django_capture_on_commit_callbacks(execute=True):
            services.publish(catalogue.REVISION_LIVE, payload)
            payload["summary"] = "changed later"
        assert Event.objects.get().payload == {"summary": "first"}

    def test_an_unknown_event_is_a_programming_error(self):
        with pytest.raises(ValueError, match="catalogue"):
            services.publish("alert.firing", {})

    def test_the_alert_events_the_lead_wires_are_in_the_catalogue(self):
        assert (
            {catalogue.ALERT_FIRED, catalogue.ALERT_ACKNOWLEDGED, catalogue.ALERT_RESOLVED}
            == {"alert.fired", "alert.acknowledged", "alert.resolved"}
            <= set(catalogue.EVENTS)
        )


class PromotionFlowTests:
    def test_request_approve_and_execute_reach_the_production_channel(
        self, alice, bob, environments, promo_registry, receiver, django_capture_on_commit_callbacks, monkeypatch
    ):
        monkeypatch.setattr("apps.deployments.tasks.revision_run.apply_async", lambda **_: None)
        monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)
        _channel("promotions", catalogue.PROMOTION_EVENTS, environments["production"], url=f"{receiver.url}/slack")
        with django_capture_on_commit_callbacks(execute=True):
            promotion = promotion_services.promotion_request(
                actor=alice, model_name=MODEL, version="2", environment="production", justification="better AUC"
            )
        with django_capture_on_commit_callbacks(execute=True):
            promotion_services.promotion_approve(actor=bob, promotion=promotion)
        deliveries = list(Delivery.objects.order_by("id"))
        assert [d.event.name for d in deliveries] == ["promotion.requested", "promotion.approved", "promotion.executed"]
        for delivery in deliveries:
            assert services.delivery_attempt(delivery_id=delivery.pk).outcome == AttemptOutcome.OK
        texts = [r.json["text"] for r in receiver.received]
        assert (
            texts[0]
            == f"Promotion requested: alice requests promotion #{promotion.pk}: credit-default v2 to production."
        )
        assert texts[1].endswith("is approved by bob.")
        executed = deliveries[2].event.payload
        assert executed["status"] == "executed" and executed["revision"] and executed["approvers"] == ["bob"]
        assert executed["url"] == f"/promotions/{promotion.pk}/"

    def test_a_rejection_says_why(
        self, alice, bob, environments, promo_registry, django_capture_on_commit_callbacks, monkeypatch
    ):
        monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)
        _channel("promotions", catalogue.PROMOTION_EVENTS, environments["production"])
        promotion = promotion_services.promotion_request(
            actor=alice, model_name=MODEL, version="2", environment="production", justification="x"
        )
        with django_capture_on_commit_callbacks(execute=True):
            promotion_services.promotion_reject(actor=bob, promotion=promotion, comment="no")
        event = Event.objects.get()
        assert event.name == "promotion.rejected"
        assert event.payload["summary"].endswith("is rejected: rejected by bob.")


class DeployFlowTests:
    def test_a_real_local_rollout_publishes_started_then_live(
        self,
        alice,
        environments,
        registry,
        local_dirs,
        teardown_local,
        django_capture_on_commit_callbacks,
        monkeypatch,
    ):
        monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)
        _channel("dev", [catalogue.REVISION_STARTED, catalogue.REVISION_LIVE], environments["dev"])
        revision = deployment_services.deployment_create(
            actor=alice, model_name="credit-default", model_version="1", environment="dev"
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert pipeline.revision_run(revision_id=revision.pk) == "live"
        events = list(Event.objects.order_by("id").values_list("name", "payload"))
        assert [name for name, _ in events] == ["deployment.revision_started", "deployment.revision_live"]
        live = events[1][1]
        assert live["summary"] == "credit-default v1 (r1) in dev is live."
        assert (live["revision"], live["version"], live["url"]) == ("r1", "1", f"/revisions/{revision.pk}/")
