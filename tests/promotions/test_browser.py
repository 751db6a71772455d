"""In headless Chromium: alice (ML lead) requests a promotion of credit-default v2 to production, bob
(reviewer) approves it from his inbox, the alias moves and a real Celery worker rolls it out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from playwright.sync_api import expect

from apps.promotions.models import PromotionRequest
from tests.browser import shot
from tests.conftest import PASSWORD
from tests.promotions.helpers import MODEL
from tests.workers import running_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/")


def test_a_lead_requests_a_reviewer_approves_and_the_rollout_runs(
    live_server, alice, bob, environments, promo_registry, mlflow_client, worker_env, teardown_local, tmp_path, page
):
    base = live_server.url
    _log_in(page, base, "alice")
    page.goto(f"{base}/models/{MODEL}/versions/2/")
    page.select_option("#id_promotion_environment", "production")
    page.fill("#id_justification", "200 trees: better AUC on the holdout")
    shot(page, "promotion-version-page")
    page.click("#request-promotion")
    page.wait_for_url("**/promotions/*/")
    expect(page.locator("#promotion-status")).to_have_text("Pending")
    expect(page.locator("#approve")).to_have_count(0)  # nobody approves their own request
    shot(page, "promotion-requested")
    page.click("text=Log out")

    _log_in(page, base, "bob")
    page.click("nav >> text=Promotions")
    page.click("#promotions tbody tr[data-status=pending] a.name")
    expect(page.locator("#metrics")).to_contain_text("roc_auc")
    page.fill("textarea[name=comment]", "metrics look good")
    with running_worker(tmp_path / "worker.log", env=worker_env):
        page.click("#approve")
        expect(page.locator("#promotion-status")).to_have_text("Executed")
        shot(page, "promotion-executed")
        assert str(mlflow_client.get_registered_model(MODEL).aliases["production"]) == "2"
        page.click("#revision-link")
        page.wait_for_url("**/revisions/*/")
        expect(page.locator("#revision-status")).to_have_text("Live", timeout=180_000)
    promotion = _off_the_event_loop(lambda: PromotionRequest.objects.select_related("executed_revision").get())
    assert promotion.executed_revision.status == "live" and promotion.executed_revision.requested_by_id == alice.pk


def _off_the_event_loop(query):
    """Playwright runs an event loop in this thread, where Django refuses database calls."""

    def run():
        try:
            return query()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
