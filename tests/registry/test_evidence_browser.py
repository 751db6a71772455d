"""In headless Chromium: carol opens customer-churn's model page, sees where each version serves, the best value
per metric and the metric history chart drawn by plotly.js, ticks three versions and compares them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, shot
from tests.conftest import PASSWORD
from tests.promotions.helpers import make_live

pytestmark = pytest.mark.django_db(transaction=True)

CHURN = "customer-churn"


@pytest.fixture
def served(environments, registry) -> None:
    """v3 live in staging, v2 in production (rows only). Made before the browser starts: Django refuses ORM calls
    in the thread where Playwright's loop runs."""
    make_live(environments["staging"], "3", model=CHURN)
    make_live(environments["production"], "2", model=CHURN)


def test_the_model_page_and_the_compare_view(live_server, carol, served, page):
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/models/{CHURN}/")
    expect(page.locator("#versions tr[data-version='3'] .live-in")).to_have_text("staging · r1")
    expect(page.locator("#versions tr[data-version='2'] .live-in")).to_have_text("production · r1")
    expect(page.locator("#versions tr[data-version='1'] .live-in")).to_have_text("—")
    expect(page.locator("#versions thead")).to_contain_text("log_loss ↓")
    expect(page.locator("#versions td.best")).to_have_count(4)  # one best version per metric (no ties here)
    expect(page.locator("#history-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    expect(page.locator("#history-chart .main-svg").first).to_be_visible()
    expect(page.locator("#history-chart").get_by_text("log_loss (↓ better)")).to_be_attached()
    shot(page, "model-page-evidence")

    page.check("#versions tr[data-version='1'] input[type=checkbox]")  # v3 and v2 come ticked
    page.click("#compare")
    page.wait_for_url("**/compare/?*")
    expect(page.locator("#compare-metrics thead th[data-version]")).to_have_text(["v1", "v2", "v3"])
    expect(page.locator("#compare-metrics tbody tr")).to_have_count(4)
    expect(page.locator("#compare-metrics tbody td.best")).to_have_count(4)
    expect(page.locator("#compare-params tr.differs[data-param=c]")).to_be_visible()
    expect(page.locator("#compare-metrics thead")).to_contain_text("production · r1")
    shot(page, "model-compare")
