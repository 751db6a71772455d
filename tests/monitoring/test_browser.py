"""A viewer opens a deployment's monitoring page in headless Chromium and finds both charts drawn by plotly.js
served by the app itself (no CDN), from telemetry written as the scoring server writes it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(page):
    page.external_requests = []
    page.on(
        "request",
        lambda r: page.external_requests.append(r.url) if not r.url.startswith(("http://localhost", "data:")) else None,
    )
    return page


def test_monitoring_page_renders_both_charts(live_server, carol, deployment, traffic, page):
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/")
    page.click("#monitoring-link")
    page.wait_for_url("**/monitoring/")
    expect(page.locator("#latency-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    expect(page.locator("#drift-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    expect(page.locator("#latency-chart .main-svg").first).to_be_visible()
    expect(page.locator("#drift-chart .heatmaplayer, #drift-chart .hm").first).to_be_attached()
    expect(page.locator("#drift-table tbody tr").first).to_have_attribute("data-feature", "prediction")
    expect(page.locator("#drift-table tbody tr:not(.mon-prediction)").first).to_have_attribute("data-feature", "age")
    assert [u for u in page.external_requests if not u.startswith(live_server.url)] == []
    shot(page, "monitoring")
