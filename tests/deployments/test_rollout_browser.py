"""A canary seen live on the revision page in headless Chromium: the traffic bar, the charts drawn by Plotly, the
countdown, a new analysis interval arriving without a reload, then Abort asked, confirmed and recorded. The
rollout is rows in the database as the worker leaves them (tests/deployments/canary.py); no worker runs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.deployments.models import AnalysisCheck, Revision
from tests.browser import log_in, shot
from tests.conftest import PASSWORD
from tests.deployments.canary import canary_in_progress, rolled_back_by_analysis

pytestmark = pytest.mark.django_db(transaction=True)


def _in_thread(function):
    """Playwright's loop runs in the test thread, so the ORM is asked from another one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function).result()


def _interval_passes(revision: Revision) -> None:
    """What the runner writes when interval 2 passes: its checks (p99 back under the threshold)."""
    now = timezone.now()
    AnalysisCheck.objects.bulk_create(
        AnalysisCheck(
            revision=revision,
            checked_at=now,
            step=1,
            weight=50,
            metric=m,
            subject="r3",
            value=v,
            threshold=t,
            verdict="pass",
            message=f"{m} on r3",
        )
        for m, v, t in [("requests", 130, 50), ("error_rate", 0.002, 0.01), ("p99_ms", 240.0, 500)]
    )


@pytest.fixture
def revision(deployment, alice) -> Revision:
    """Made before ``page``: once Playwright's loop runs in the test thread, the ORM refuses to work there."""
    return canary_in_progress(deployment, requested_by=alice)


def test_a_lead_watches_a_canary_and_aborts_it(live_server, revision, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/revisions/{revision.pk}/")

    bar = page.locator("#traffic-bar")
    expect(bar).to_have_attribute("data-candidate", "50")
    expect(bar.locator(".seg.stable")).to_have_text("r2 · 50%")
    expect(bar.locator(".seg.candidate")).to_have_text("r3 · 50%")
    for metric in ("error_rate", "p99_ms", "drift"):
        expect(page.locator(f"#chart-{metric}")).to_have_attribute("data-rendered", "true", timeout=15_000)
    expect(page.locator("#chart-p99_ms .main-svg").first).to_be_visible()
    expect(page.locator("#rollout-next")).to_contain_text("next analysis in")
    expect(page.locator("#checks tbody tr.check-fail")).to_have_count(1)
    shot(page, "rollout-canary")

    # A new interval's checks arrive: the card is redrawn in place, no reload (the marker survives).
    page.evaluate("window.stillTheSamePage = true")
    _in_thread(lambda: _interval_passes(revision))
    expect(page.locator("#checks tbody tr")).to_have_count(15, timeout=15_000)
    expect(page.locator("#chart-p99_ms")).to_have_attribute("data-rendered", "true", timeout=15_000)
    assert page.evaluate("window.stillTheSamePage") is True

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#rollout-abort")
    expect(page.locator("#rollout-control")).to_contain_text("Abort requested by alice")
    assert asked == ["Abort the rollout of r3 (v2) in dev? All traffic goes back to r2 now."]
    expect(page.locator(".messages")).to_contain_text("Aborting r3")
    expect(page.locator("#rollout-phase")).to_have_text("Aborting")
    expect(page.locator("#rollout-abort")).to_have_count(0)
    control = _in_thread(lambda: Revision.objects.values_list("control", "control_by__username").get(pk=revision.pk))
    assert control == ("abort", "alice")
    shot(page, "rollout-aborting")


def test_a_no_to_the_question_aborts_nothing(live_server, revision, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/revisions/{revision.pk}/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#rollout-abort")
    page.wait_for_timeout(500)
    expect(page.locator("#rollout-phase")).to_have_text("Analysing")
    assert _in_thread(lambda: Revision.objects.get(pk=revision.pk).control) == ""


def test_a_refused_strategy_comes_back_at_its_field(live_server, alice, environments, registry, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/models/credit-default/versions/2/")
    page.select_option("#id_strategy", "canary")
    page.click("#strategy-options summary")
    page.fill("#id_steps", "50, 20")
    page.fill("#id_max_error_rate", "2")
    page.click("#deploy")
    page.wait_for_url("**/models/credit-default/versions/2/")
    field = page.locator(".strategy-field.has-error")
    expect(field).to_contain_text("strategy.steps must rise strictly")
    expect(page.locator("#id_steps")).to_have_value("50, 20")
    expect(page.locator("#id_max_error_rate")).to_have_value("2")
    expect(page.locator("#id_strategy")).to_have_value("canary")
    shot(page, "deploy-strategy-error")


@pytest.fixture
def rolled_back(deployment, carol) -> Revision:
    return rolled_back_by_analysis(deployment)


def test_a_viewer_sees_why_a_canary_was_rolled_back(live_server, rolled_back, page):
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto(f"{live_server.url}/revisions/{rolled_back.pk}/")
    expect(page.locator("#rollout-phase")).to_have_text("Rolled back by analysis")
    expect(page.locator("#rollout-failed")).to_contain_text("Error rate of r3: 12.0% against max 1.00%")
    expect(page.locator("#rollout-failed")).to_contain_text("11.0 points over the maximum")
    expect(page.locator("#revision-error")).to_contain_text("analysis failed at 50%")
    expect(page.locator("#chart-error_rate")).to_have_attribute("data-rendered", "true", timeout=15_000)
    expect(page.locator(".rollout-actions")).to_have_count(0)
    shot(page, "rollout-rolled-back")


def test_a_button_refused_meanwhile_says_why_and_the_page_follows_the_rollout_to_its_end(live_server, revision, page):
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/revisions/{revision.pk}/")
    expect(page.locator("#rollout-pause")).to_be_visible()
    _in_thread(lambda: Revision.objects.filter(pk=revision.pk).update(control="abort"))  # someone else aborted
    page.click("#rollout-pause")
    expect(page.locator(".messages .status-409")).to_contain_text("r3 is being aborted.")
    assert page.url.endswith(f"/revisions/{revision.pk}/pause/")
    _in_thread(lambda: Revision.objects.filter(pk=revision.pk).update(status="rolled_back", canary_weight=0))
    # final: the page shows the final revision by GET, not by re-sending the refused POST
    page.wait_for_url(f"**/revisions/{revision.pk}/", timeout=15_000)
    expect(page.locator("#rollout-phase")).to_have_text("Aborted")


# ---------------------------------------------------------------------------- a real canary, a real worker
@pytest.fixture
def real_canary(lead_api, environments, registry, worker_env, teardown_local, tmp_path):
    """credit-default v1 live on the local target and v2 held at 20 % by a real worker (long intervals)."""
    from tests.workers import running_worker, wait_for

    log = tmp_path / "worker.log"
    with running_worker(log, env={**worker_env, "ROLLOUT_TICK_SECONDS": "0.2"}):

        def deploy(version: str, strategy: dict | None = None) -> dict:
            body = {"model": "credit-default", "version": version, "environment": "dev"}
            response = lead_api.post("/api/v1/deployments/", {**body, "strategy": strategy or {}}, format="json")
            assert response.status_code == 202, response.content
            return response.json()

        first = deploy("1")
        wait_for(lambda: lead_api.get(first["url"]).json()["status"] == "live", timeout=180, what="r1", log=log)
        canary = deploy("2", {"type": "canary", "steps": [20, 50], "step_seconds": 600, "min_requests": 5})
        wait_for(
            lambda: Revision.objects.filter(pk=canary["id"], canary_weight=20).exists(),
            timeout=180,
            what="the canary at 20%",
            log=log,
        )
        yield Revision.objects.get(pk=canary["id"]), log


def test_a_real_canary_is_seen_live_and_aborted_back_to_the_live_revision(live_server, real_canary, page):
    import requests

    revision, log = real_canary
    log_in(page, live_server.url, "alice", PASSWORD)
    page.goto(f"{live_server.url}/revisions/{revision.pk}/")
    bar = page.locator("#traffic-bar")
    expect(bar).to_have_attribute("data-candidate", "20")
    expect(bar.locator(".seg.candidate")).to_have_text("r2 · 20%")
    expect(page.locator("#rollout-next")).to_contain_text("next analysis in")
    shot(page, "rollout-real-canary")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rollout-abort")
    expect(page.locator("#rollout-phase")).to_have_text("Aborted", timeout=60_000)
    shot(page, "rollout-real-canary-aborted")
    status, error, weight = _in_thread(
        lambda: Revision.objects.values_list("status", "error", "canary_weight").get(pk=revision.pk)
    )
    assert (status, weight) == ("rolled_back", 0) and "aborted by alice at interval 1 of 2 (20% of traffic)" in error
    url = _in_thread(lambda: revision.deployment.__class__.objects.get(pk=revision.deployment_id).endpoint_url)
    for _ in range(10):  # every request is the live revision's again
        answer = requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": [], "data": []}}, timeout=10)
        assert answer.headers["x-modelplane-revision"] == "r1"
