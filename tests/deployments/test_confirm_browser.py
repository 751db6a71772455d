"""Delete and Roll back ask first, naming the deployment and environment; in a gated environment the person types
the deployment's name. In headless Chromium; the API is unchanged."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.deployments.models import Deployment
from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def in_production(environments, dave) -> Deployment:
    return Deployment.objects.create(
        environment=environments["production"],
        model_name="credit-default",
        name="credit-default",
        status="live",
        endpoint_url="http://127.0.0.1:1",
        created_by=dave,
    )


def test_delete_asks_and_a_no_keeps_the_deployment(live_server, alice, deployment, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{deployment.pk}/")
    asked = []

    def answer(dialog, accept):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("#delete")
    page.wait_for_timeout(500)
    assert asked == ["Delete credit-default in dev? It stops serving."]
    page.reload()
    expect(page.locator("#deployment-status")).to_have_text("Live")

    page.once("dialog", lambda d: answer(d, True))
    page.click("#delete")
    expect(page.locator("#deployment-status")).not_to_have_text("Live")
    assert len(asked) == 2


def test_a_gated_environment_wants_the_name_typed(live_server, dave, in_production, page):
    log_in(page, live_server.url, "dave", PASSWORD)
    page.goto(f"{live_server.url}/deployments/{in_production.pk}/")
    asked = []

    def wrong_name(dialog):
        asked.append((dialog.type, dialog.message))
        dialog.accept("credit")

    page.once("dialog", wrong_name)
    page.click("#delete")
    page.wait_for_timeout(500)
    assert asked[0][0] == "prompt" and "in production" in asked[0][1] and "Type credit-default" in asked[0][1]
    page.reload()
    expect(page.locator("#deployment-status")).to_have_text("Live")
    shot(page, "deployment-confirm")
