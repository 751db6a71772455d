"""In headless Chromium: dave (admin) adds a signed webhook channel and never sees its URL or secret again; a
failed delivery shows on the Deliveries page with its attempt, and Resend delivers it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from playwright.sync_api import expect

from apps.events import catalogue, services
from apps.events.models import Channel, Delivery
from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "browser-signing-secret-0123"


def _off_thread(work: Callable[[], object]) -> object:
    """ORM work while Playwright's loop runs in the test thread (Django refuses it there)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    return result[0]


def test_an_admin_adds_a_channel_and_resends_a_failed_delivery(
    live_server, dave, environments, receiver, settings, monkeypatch, page
):
    monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)  # attempts run below
    settings.EVENTS_DELIVERY_ATTEMPTS = 1
    base = live_server.url
    log_in(page, base, "dave", PASSWORD)
    page.click("nav >> text=Channels")
    page.wait_for_url("**/channels/")
    page.fill("#id_name", "CI pipeline")
    page.select_option("#id_kind", "webhook")
    page.select_option("#id_environment", "dev")
    page.fill("#id_url", f"{receiver.url}/hook/TOPSECRETPATH")
    page.fill("#id_secret", SECRET)
    page.check(f"input[name=events][value='{catalogue.REVISION_LIVE}']")
    page.click("#channel-form button[type=submit]")
    page.wait_for_url("**/channels/")
    row = page.locator("#channels tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("CI pipeline")
    expect(row).to_contain_text("http://127.0.0.1/… · signed")
    assert "TOPSECRETPATH" not in page.content() and SECRET not in page.content()
    shot(page, "events-channels")

    def publish_and_fail() -> int:
        receiver.answers.append((503, {}))
        dev = environments["dev"]
        services.publish(catalogue.REVISION_LIVE, {"summary": "credit-default v1 (r1) in dev is live."}, dev)
        delivery = Delivery.objects.get()
        services.delivery_attempt(delivery_id=delivery.pk)
        return delivery.pk

    failed = _off_thread(publish_and_fail)
    page.click("text=Deliveries")
    page.wait_for_url("**/deliveries/")
    failed_row = page.locator(f"#delivery-{failed}")
    expect(failed_row).to_contain_text("Failed")
    expect(failed_row).to_contain_text("503")
    shot(page, "events-deliveries")
    failed_row.locator("button.resend").click()
    page.wait_for_url("**/deliveries/*/")
    expect(page.locator(".messages")).to_contain_text("Resending")
    expect(page.locator("#delivery-facts")).to_contain_text("Pending")
    resent = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert resent != failed
    _off_thread(lambda: services.delivery_attempt(delivery_id=resent))
    page.reload()
    expect(page.locator("#delivery-facts")).to_contain_text("Delivered")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#attempts")).to_contain_text("200")
    assert "TOPSECRETPATH" not in page.content()
    shot(page, "events-delivery-resent")
    assert _off_thread(lambda: Channel.objects.get().deliveries.count()) == 2
