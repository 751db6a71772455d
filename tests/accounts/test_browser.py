"""In headless Chromium: carol creates an API token and sees its key exactly once; bob reads the audit trail
and finds that creation, with the token's name but not its key."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def _log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/")


def test_a_token_is_shown_once_and_its_creation_is_audited_without_the_key(live_server, carol, bob, dave, page):
    base = live_server.url
    _log_in(page, base, "carol")
    page.click("nav >> text=Tokens")
    page.wait_for_url("**/accounts/tokens/")
    page.fill("#id_name", "laptop notebook")
    page.click("#create-token")
    key = page.locator("#token-key").input_value()
    assert len(key) >= 40
    expect(page.locator("#token-created")).to_contain_text("only this once")
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    shot(page, "accounts-token-created")
    page.goto(f"{base}/accounts/tokens/")
    expect(page.locator("#token-key")).to_have_count(0)
    expect(page.locator("#tokens")).to_contain_text(key[:8])
    assert key not in page.content()
    shot(page, "accounts-tokens")
    page.click("text=Log out")

    _log_in(page, base, "bob")
    page.click("nav >> text=Audit")
    page.wait_for_url("**/audit/")
    page.fill("input[name=action]", "api_token")
    page.click("#audit-filters button[type=submit]")
    row = page.locator("#audit-events tbody tr[data-action='api_token.create']")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("carol")
    expect(row).to_contain_text("Web UI")
    assert key not in page.content()
    shot(page, "accounts-audit")
    page.click("text=Log out")

    _log_in(page, base, "dave")
    page.click("nav >> text=Service accounts")
    page.fill("#id_username", "ci-github-actions")
    page.select_option("#id_role", "lead")
    page.fill("#id_description", "deploys from the main branch")
    page.click("#service-account-form button[type=submit]")
    page.wait_for_url("**/service-accounts/*/")
    page.fill("#id_name", "github")
    page.click("#create-token")
    expect(page.locator("#token-key")).to_have_count(1)
    shot(page, "accounts-service-account")
