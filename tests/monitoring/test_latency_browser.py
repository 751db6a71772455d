"""In headless Chromium: the latency chart offers shorter windows, zooms to where the data is, draws p99 and
errors in different colours with whole-number error ticks. Screenshot: monitoring-latency.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_latency_chart_is_readable(live_server, carol, deployment, traffic, page):
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/monitoring/")
    expect(page.locator("#windows [data-window='15m']")).to_have_text("Last 15 min")
    chart = page.locator("#latency-chart")
    expect(chart).to_have_attribute("data-rendered", "true", timeout=20_000)
    # The two minutes of traffic fill the plot instead of its last tenth: the x axis starts near them.
    start, first = page.evaluate(
        """() => { const c = document.getElementById('latency-chart');
                   return [Date.parse(c.layout.xaxis.range[0]), Date.parse(c.data[0].x[0])]; }"""
    )
    assert 0 < first - start <= 3 * 60_000  # a couple of minutes before the first point, not an hour
    assert page.locator("#latency-chart .x2tick text").count() >= 3
    colours = page.evaluate(
        """() => {
          const data = document.getElementById('latency-chart').data;
          const by = Object.fromEntries(data.map(t => [t.name, (t.line && t.line.color) || t.marker.color]));
          return [by['p99'], by['errors % (5xx)']];
        }"""
    )
    assert colours[0] != colours[1], colours
    error_ticks = page.locator("#latency-chart .y3tick text").all_text_contents()
    assert error_ticks == ["0%", "1%", "2%", "3%", "4%", "5%"], error_ticks
    expect(page.locator("#latency-chart").get_by_text("no errors or rejected requests in this window")).to_be_visible()
    shot(page, "monitoring-latency")
    page.click("#windows [data-window='15m']")
    expect(chart).to_have_attribute("data-rendered", "true", timeout=20_000)
    shot(page, "monitoring-latency-15m")
