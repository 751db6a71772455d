"""What a person sees, in headless Chromium: log in, browse the models, open a model.

Screenshots land in ``$MODELPLANE_VAR_DIR/screenshots`` for a human to look at.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_logs_in_and_browses_the_registry(live_server, carol, registry, page):
    page.goto(f"{live_server.url}/models/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "carol")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#models")
    assert page.locator("#models tbody tr").count() == 3
    assert page.locator(".topbar").evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(20, 26, 46)"
    shot(page, "models")

    page.fill("input[name=q]", "credit")
    page.click("form[role=search] button")
    page.wait_for_url("**/models/?q=credit*")
    expect(page.locator("#models tbody tr")).to_have_count(1)
    page.click("text=credit-default")
    page.wait_for_selector("#versions")
    assert page.locator("#versions tbody tr").count() == 2
    assert page.locator("text=@staging").first.is_visible()
    assert page.locator(".sigcol").count() >= 23
    shot(page, "model")

    page.click("#versions >> text=v2")
    page.wait_for_selector("text=Source run")
    assert page.locator("text=n_estimators").is_visible()
    shot(page, "version")


def test_a_wrong_password_is_refused(live_server, carol, page):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error-message")).to_be_visible()
    assert "/accounts/login/" in page.url
