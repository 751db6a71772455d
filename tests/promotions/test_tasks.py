"""The webhook notification, posted to a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from apps.promotions.webhooks import WebhookError

from apps.promotions import services, tasks
from apps.promotions.models import PromotionPolicy
from tests.promotions.helpers import MODEL

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook():
    """An incoming-webhook stand-in: records each JSON body and answers with the next queued status."""
    received: list[dict] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, statuses
    server.shutdown()
    server.server_close()


@pytest.fixture
def promotion(alice, environments, promo_registry, webhook):
    PromotionPolicy.objects.create(environment=environments["production"], webhook_url=webhook[0])
    return services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="better AUC"
    )


def test_the_webhook_gets_json_with_a_text_field(promotion, webhook):
    _, received, _ = webhook
    assert tasks.notify(request_id=promotion.pk, event="requested") == "sent"
    body = received[0]
    assert body["text"] == f"alice requests promotion #{promotion.pk}: credit-default v2 to production."
    assert body["event"] == "requested"
    assert body["promotion"]["path"] == f"/promotions/{promotion.pk}/"


def test_decisions_are_queued_after_commit_and_name_the_approvers(
    promotion, bob, webhook, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(tasks.notify, "apply_async", lambda kwargs, **_: sent.append(kwargs))
    monkeypatch.setattr("apps.deployments.tasks.revision_run.apply_async", lambda **_: None)
    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_approve(actor=bob, promotion=promotion)
    assert sent == [
        {"request_id": promotion.pk, "event": "approved"},
        {"request_id": promotion.pk, "event": "executed"},
    ]
    tasks.notify(request_id=promotion.pk, event="approved")
    assert "approved by bob" in webhook[1][0]["text"]


def test_a_server_error_is_retried_and_a_refusal_is_not(promotion, webhook):
    _, received, statuses = webhook
    statuses.extend([503, 404])
    with pytest.raises(WebhookError):
        tasks.notify(request_id=promotion.pk, event="requested")
    assert tasks.notify(request_id=promotion.pk, event="requested") == "refused 404"
    assert len(received) == 2


def test_a_broker_outage_never_fails_the_decision(promotion, bob, django_capture_on_commit_callbacks, monkeypatch):
    def broker_down(**_):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.notify, "apply_async", broker_down)
    monkeypatch.setattr("apps.deployments.tasks.revision_run.apply_async", lambda **_: None)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.promotion_reject(actor=bob, promotion=promotion, comment="no")
    assert result.status == "rejected"


def test_a_deleted_request_is_not_notified(db):
    assert tasks.notify(request_id=12345, event="requested") == "gone"


def test_a_cancellation_is_notified_with_the_reason(promotion, alice, webhook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        services.promotion_cancel(actor=alice, promotion=promotion, comment="wrong version")
    assert len(callbacks) == 1
    tasks.notify(request_id=promotion.pk, event="cancelled")
    assert webhook[1][0]["text"].endswith("is cancelled by alice: wrong version.")
