"""In headless Chromium: the audit trail names revisions as pages do ("r1 of credit-default in production"),
credits a deploy an approval executed to the reviewer, requested by the lead; the filters read "Any ..." and
offer the environments, the audit filter's placeholders are whole and its dates on one line.
Screenshots: audit-revisions.png, filters-deployments.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.deployments import services as deployments
from apps.promotions import services as promotions
from tests.browser import log_in, shot
from tests.conftest import PASSWORD
from tests.promotions.helpers import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def approved(alice, bob, environments, promo_registry):
    deployments.deployment_create(actor=alice, model_name=MODEL, model_version="1", environment="dev")
    promotion = promotions.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="AUC +0.02"
    )
    return promotions.promotion_approve(actor=bob, promotion=promotion, comment="looks good")


def test_the_audit_names_revisions_and_who_executed_a_deploy(live_server, approved, page):
    log_in(page, live_server.url, "bob", PASSWORD)
    page.goto(f"{live_server.url}/audit/?action=deployment.deploy")
    rows = page.locator("#audit-events tbody tr[data-action='deployment.deploy']")
    expect(rows).to_have_count(2)
    production = rows.filter(has_text="in production")
    expect(production).to_contain_text("revision r1 of credit-default in production")
    expect(production).to_contain_text("on approval by bob, requested by alice")
    expect(production.locator("td.name")).to_have_text("bob")
    expect(rows.filter(has_text="in dev").locator("td.name")).to_have_text("alice")
    expect(page.locator("#audit-events")).not_to_contain_text("revision 1 ")
    # The filter: every placeholder whole, the date range on one line.
    cut = page.evaluate(
        """() => [...document.querySelectorAll('#audit-filters input[placeholder]')].filter(input => {
          const style = getComputedStyle(input), ctx = document.createElement('canvas').getContext('2d');
          ctx.font = style.font;
          const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return ctx.measureText(input.placeholder).width > room;
        }).map(input => input.placeholder)"""
    )
    assert cut == []
    since, until = page.locator("#id_since").bounding_box(), page.locator("#id_until").bounding_box()
    label = page.locator("label[for=id_since]").bounding_box()
    assert (
        abs(since["y"] - until["y"]) < 4
        and abs(label["y"] + label["height"] / 2 - since["y"] - since["height"] / 2) < 6
    )
    shot(page, "audit-revisions")


def test_the_filters_read_any_and_offer_the_environments(live_server, approved, page):
    log_in(page, live_server.url, "bob", PASSWORD)
    page.goto(f"{live_server.url}/deployments/")
    environment = page.locator(".filters select[name=environment]")
    assert environment.locator("option").all_text_contents() == ["Any environment", "dev", "staging", "production"]
    assert page.locator(".filters select[name=status] option").first.text_content() == "Any status"
    assert "---------" not in page.content()
    environment.select_option("production")
    page.click(".filters button[type=submit]")
    expect(page.locator("#deployments tbody tr")).to_have_count(1)
    expect(page.locator("#deployments tbody tr")).to_contain_text("production")
    shot(page, "filters-deployments")
