"""In headless Chromium: bob opens a promotion that executed. The page still shows what was compared when it
was requested (v2 against v1, log_loss going down shown green as better, the param that changed), what production
serves now apart from it, and an older request without a recorded comparison says so instead of comparing v2
with v2."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Deployment, Revision
from apps.promotions import services
from apps.promotions.models import PromotionRequest
from tests.browser import log_in, shot
from tests.conftest import PASSWORD
from tests.promotions.helpers import MODEL, make_live

CHURN = "customer-churn"

pytestmark = pytest.mark.django_db(transaction=True)

GREEN, RED = "rgb(24, 121, 78)", "rgb(180, 35, 24)"  # --ok and --bad of app.css


def _executed(alice, bob, environments, model: str, live: str, candidate: str) -> PromotionRequest:
    make_live(environments["production"], live, model=model)
    promotion = services.promotion_request(
        actor=alice, model_name=model, version=candidate, environment="production", justification="better model"
    )
    promotion = services.promotion_approve(actor=bob, promotion=promotion, comment="ship it")
    revision = promotion.executed_revision  # the worker's part, as rows: the rollout finished
    Revision.objects.filter(pk=revision.pk).update(status=RevisionStatus.LIVE, finished_at=timezone.now())
    revision.deployment.revisions.exclude(pk=revision.pk).update(status=RevisionStatus.SUPERSEDED)
    Deployment.objects.filter(pk=revision.deployment_id).update(live_revision=revision)
    return promotion


@pytest.fixture
def promotions(alice, bob, environments, promo_registry) -> tuple[PromotionRequest, PromotionRequest]:
    """Two executed requests, made before the browser starts (Django refuses ORM calls in Playwright's thread):
    customer-churn v2 over v1 (its log_loss went down), and credit-default v2 over v1 as made before requests
    kept their comparison."""
    executed = _executed(alice, bob, environments, CHURN, live="1", candidate="2")
    older = _executed(alice, bob, environments, MODEL, live="1", candidate="2")
    PromotionRequest.objects.filter(pk=older.pk).update(comparison=None)
    return executed, older


def test_an_executed_promotion_shows_what_was_approved_and_what_is_live(live_server, promotions, page):
    executed, older = promotions
    log_loss = next(m for m in executed.comparison["metrics"] if m["name"] == "log_loss")
    assert log_loss["candidate"] < log_loss["live"]  # the case: log_loss went down, which is better

    log_in(page, live_server.url, "bob", PASSWORD)
    page.goto(f"{live_server.url}/promotions/{executed.pk}/")
    expect(page.locator("#promotion-status")).to_have_text("Executed")
    expect(page.locator("#comparison h2")).to_have_text("What was compared when v2 was requested")
    expect(page.locator("#metrics thead")).to_contain_text("Live v1")
    expect(page.locator("#params tbody tr").first).to_contain_text("c")
    cell = page.locator("#metrics tr[data-metric=log_loss] td").nth(3)
    expect(cell).to_contain_text("better")
    expect(cell).to_have_css("color", GREEN)
    for row in executed.comparison["metrics"]:  # every delta coloured by its own direction
        if row["verdict"] in ("better", "worse"):
            delta = page.locator(f"#metrics tr[data-metric={row['name']}] td").nth(3)
            expect(delta).to_have_css("color", GREEN if row["verdict"] == "better" else RED)
    expect(page.locator("#metrics tr[data-metric=log_loss] td").first).to_contain_text("↓ better")
    expect(page.locator("#live-now")).to_contain_text("Now live in production: v2")
    expect(page.locator("#live-now")).to_contain_text("alias names v2")
    shot(page, "promotion-executed-evidence")

    page.goto(f"{live_server.url}/promotions/{older.pk}/")
    expect(page.locator("#no-snapshot")).to_contain_text("Not recorded")
    expect(page.locator("#metrics")).to_have_count(0)
    expect(page.locator("#live-now")).to_contain_text("Now live in production: v2")
    shot(page, "promotion-without-snapshot")
