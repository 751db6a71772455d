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


def test_too_few_rows_read_as_not_enough_data(live_server, carol, deployment, traffic, page, settings):
    settings.MONITORING_MIN_ROWS = 1000  # the fixture's 300 sampled rows are too few to judge
    settings.SCORING_TELEMETRY_SAMPLE_RATE = 0.05
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/monitoring/")
    expect(page.locator("#drift-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    age = page.locator("#drift-table tr[data-feature=age]")
    expect(age.locator(".pill")).to_have_text("not enough data")
    expect(age).to_contain_text("/ 1,000")
    expect(page.locator("#drift-table .pill.bad")).to_have_count(0)
    expect(page.locator("#overlay-chart")).to_have_count(0)  # no "most drifting" among the unjudged
    expect(page.locator("#sampling-rate")).to_contain_text("5%")
    expect(page.locator("#sampling-rate")).to_contain_text("SCORING_TELEMETRY_SAMPLE_RATE")
    expect(page.locator("#drift-chart").get_by_text("age (300/1000 rows)", exact=True)).to_be_attached()
    shot(page, "monitoring-not-enough-data")
