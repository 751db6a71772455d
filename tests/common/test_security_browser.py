"""The Content-Security-Policy as a browser enforces it: headless Chromium opens the pages with scripts (the
monitoring charts, the model page's metric history, the API docs) and the login page, and reports not one CSP
violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(page):
    page.violations = []
    page.on("console", lambda m: page.violations.append(m.text) if "Content Security Policy" in m.text else None)
    return page


def test_no_page_with_scripts_violates_the_policy(live_server, carol, deployment, traffic, page):
    page.goto(f"{live_server.url}/accounts/login/")
    policy = page.evaluate("() => fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self'" in policy
    page.fill("#id_username", "carol")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/")

    page.goto(f"{live_server.url}/deployments/{deployment.pk}/monitoring/")
    expect(page.locator("#latency-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)
    expect(page.locator("#drift-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)

    page.goto(f"{live_server.url}/models/credit-default/")  # the metric history chart
    expect(page.locator("#history-chart")).to_have_attribute("data-rendered", "true", timeout=20_000)

    page.goto(f"{live_server.url}/docs/api/")
    expect(page.locator("#swagger-ui .info .title").first).to_contain_text("Modelplane API", timeout=20_000)

    # An inline script is what the policy is for: the browser must refuse one injected into a page.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.appendChild(s); }"
    )
    assert page.evaluate("() => window.injected") is None
    refused = [v for v in page.violations if "inline script" in v or "script-src" in v]
    assert refused, page.violations
    assert len(page.violations) == len(refused), f"violations besides the injected script: {page.violations}"
