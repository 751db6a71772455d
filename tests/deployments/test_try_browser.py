"""In headless Chromium, on a real local deployment: the revision page marks the build and push steps skipped
(not pending); the deployment page shows a "Score it" snippet built from the input example with a working copy
button, and "Test this endpoint" answers with the status and latency. Screenshots: try-*.png."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from apps.deployments import pipeline, services
from apps.deployments.models import Deployment, Revision
from tests.browser import log_in, shot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(alice, environments, registry, local_dirs, teardown_local) -> Deployment:
    """credit-default v2 live in dev, run in-process (requested before ``page``: the ORM is used here)."""
    revision = services.deployment_create(
        actor=alice, model_name="credit-default", model_version="2", environment="dev"
    )
    assert pipeline.revision_run(revision_id=revision.pk) == "live", Revision.objects.get(pk=revision.pk).error
    return Deployment.objects.get(pk=revision.deployment_id)


def test_skipped_steps_look_skipped_and_the_endpoint_can_be_tried(live_server, live, page):
    base = live_server.url
    log_in(page, base, "alice", PASSWORD)

    page.goto(f"{base}/revisions/{live.live_revision_id}/")
    for name in ("build", "push"):
        step = page.locator(f'[data-step="{name}"]')
        expect(step).to_have_attribute("data-status", "skipped")
        expect(step.locator(".dot")).to_have_class("dot skip")
        expect(step.locator(".message .pill")).to_have_text("Skipped")
    expect(page.locator('[data-step="resolve"] .dot')).to_have_class("dot ok")
    expect(page.locator("#score-snippet")).to_contain_text('"credit_limit"')
    shot(page, "try-revision-skipped-steps")

    page.goto(f"{base}/deployments/{live.pk}/")
    snippet = page.locator("#score-snippet")
    expect(snippet).to_contain_text("--data-binary @- <<'JSON'")
    expect(snippet).to_contain_text('"repayment_status_1"')
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click("#copy-snippet")
    expect(page.locator("#copy-snippet")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == snippet.text_content()

    body = json.loads(page.locator("#test-body").input_value())
    assert list(body) == ["dataframe_split"]
    page.click("#test-send")
    expect(page.locator("#test-status")).to_have_text("200", timeout=30_000)
    expect(page.locator("#test-latency")).to_contain_text(" ms")
    expect(page.locator("#test-response")).to_contain_text('"predictions"')
    shot(page, "try-test-endpoint")

    body["dataframe_split"]["columns"] = ["nope"]
    body["dataframe_split"]["data"] = [[1]]
    page.fill("#test-body", json.dumps(body))
    page.click("#test-send")
    expect(page.locator("#test-status")).to_have_class("pill bad")
    expect(page.locator("#test-body")).to_have_value(json.dumps(body))  # what was typed stays
    shot(page, "try-test-endpoint-refused")
