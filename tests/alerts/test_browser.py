"""An ML lead sees the firing badge, opens the Alerts page in headless Chromium, finds the firing alert first,
opens it (the chart drawn by plotly.js), and acknowledges it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.alerts import services
from apps.alerts.models import Alert
from tests.alerts.traffic import NOW, path_of, write_burning
from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def firing(telemetry_dir, deployment, alice) -> Alert:
    write_burning(path_of(telemetry_dir, deployment))
    services.slo_create(actor=alice, deployment=deployment, kind="availability", target=0.99, min_requests=100)
    services.evaluate_all(now=NOW)
    return Alert.objects.get()


def test_a_lead_acknowledges_the_firing_alert(live_server, firing, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    expect(page.locator("#firing-badge")).to_have_text("1")
    page.click("#nav-alerts")
    page.wait_for_url("**/alerts/")
    first = page.locator("#alerts tbody tr").first
    expect(first).to_have_attribute("data-state", "firing")
    shot(page, "alerts-list")
    first.locator("a.name").click()
    page.wait_for_url(f"**/alerts/{firing.pk}/")
    expect(page.locator("#alert-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    expect(page.locator("#alert-chart .main-svg").first).to_be_visible()
    page.fill("#ack-form input[name=note]", "rolling back")
    page.click("#ack")
    expect(page.locator(".messages")).to_contain_text(f"Alert #{firing.pk} acknowledged.")
    expect(page.locator(".pagehead [data-state]")).to_have_text("acknowledged")
    expect(page.locator("#transitions tr[data-transition=acknowledged]")).to_contain_text("alice")
    expect(page.locator("#firing-badge")).to_have_count(0)
    expect(page.locator("#ack-form")).to_have_count(0)
    shot(page, "alert-acknowledged")
