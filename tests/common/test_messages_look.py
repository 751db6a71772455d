"""Errors look like errors and successes like successes: a refused form's message is red (and says so), a saved
one's green; not one pale-blue banner for both. In headless Chromium, with screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
BAD_SOFT, OK_SOFT = "rgb(253, 236, 234)", "rgb(227, 246, 236)"


def test_refusals_are_red_and_successes_green(live_server, alice, deployment, telemetry_dir, registry, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/monitoring/")
    page.fill("#thresholds-form input[name=psi_warn]", "0.5")
    page.fill("#thresholds-form input[name=psi_alert]", "0.2")  # below warn: refused by the service
    page.click("#thresholds-form button[type=submit]")
    refused = page.locator(".messages li.msg-error")
    expect(refused).to_contain_text("Thresholds not changed")
    assert refused.evaluate("e => getComputedStyle(e).backgroundColor") == BAD_SOFT
    assert refused.evaluate("e => getComputedStyle(e, '::before').content") == '"Refused: "'
    shot(page, "message-error")

    page.fill("#thresholds-form input[name=psi_warn]", "0.1")
    page.fill("#thresholds-form input[name=psi_alert]", "0.3")
    page.click("#thresholds-form button[type=submit]")
    saved = page.locator(".messages li.msg-success")
    expect(saved).to_contain_text("Drift thresholds saved.")
    assert saved.evaluate("e => getComputedStyle(e).backgroundColor") == OK_SOFT
    shot(page, "message-success")
