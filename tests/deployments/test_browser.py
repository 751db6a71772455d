"""An ML lead deploys from the version page in headless Chromium and watches the steps go live, then rolls
back, with a real Celery worker doing the work."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from apps.accounts.permissions import has_role
from tests.browser import log_in, shot
from tests.conftest import PASSWORD
from tests.workers import running_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _deploy(page, base: str, version: str) -> None:
    page.goto(f"{base}/models/credit-default/versions/{version}/")
    page.select_option("#id_environment", "dev")
    page.click("#deploy")
    page.wait_for_url("**/revisions/*/")
    # The steps advance without a reload: the page polls the revision and updates them in place.
    expect(page.locator('[data-step="resolve"]')).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(page.locator('[data-step="live"]')).to_have_attribute("data-status", "succeeded", timeout=120_000)
    expect(page.locator("#revision-status")).to_have_text("Live", timeout=10_000)
    # Once final, the page reloads itself to show the endpoint: wait for that before navigating away.
    expect(page.locator("text=Try it")).to_be_visible(timeout=10_000)


def test_a_lead_deploys_watches_it_go_live_and_rolls_back(
    live_server, alice, environments, registry, worker_env, teardown_local, tmp_path, page
):
    with running_worker(tmp_path / "worker.log", env=worker_env):
        log_in(page, live_server.url, "alice", PASSWORD)

        _deploy(page, live_server.url, "1")
        expect(page.locator('[data-step="build"]')).to_have_attribute("data-status", "skipped")
        shot(page, "revision-live")
        _deploy(page, live_server.url, "2")

        page.goto(f"{live_server.url}/deployments/")
        page.click("#deployments >> text=credit-default")
        expect(page.locator("#endpoint")).to_contain_text("http://127.0.0.1:")
        shot(page, "deployment")
        asked = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click("button.rollback")
        page.wait_for_url("**/revisions/*/")
        assert asked == ["Roll credit-default in dev back to r1 (v1)?"]  # it asked first
        expect(page.locator("h1")).to_contain_text("r3")
        expect(page.locator("#revision-status")).to_have_text("Live", timeout=120_000)
        expect(page.locator("text=Try it")).to_be_visible(timeout=10_000)
        page.goto(f"{live_server.url}/deployments/")
        expect(page.locator("#deployments tbody tr").first).to_contain_text("v1")


def test_an_admin_grants_a_role_in_one_environment(live_server, dave, carol, environments, page):
    log_in(page, live_server.url, "dave", PASSWORD)
    page.click("nav >> text=Access")
    page.fill("#grant-form input[name=user]", "carol")
    page.select_option("#grant-form select[name=role]", "lead")
    page.select_option("#grant-form select[name=environment]", "dev")
    page.click("#grant")
    row = page.locator('tr[data-user="carol"]')
    expect(row).to_contain_text("ML lead in dev")
    expect(page.locator(".messages")).to_contain_text("carol is now ML lead in dev")
    shot(page, "access")
    # Playwright's loop runs in this thread, so the ORM is asked from another one.
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(lambda: {e: has_role(carol, "lead", environment=environments[e]) for e in environments})
        assert held.result() == {"dev": True, "staging": False, "production": False}
