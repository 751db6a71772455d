"""The revision page of a progressive rollout (traffic bar, plan, checks, charts, buttons for those who may act)
and its four buttons (promote now, pause, resume, abort), refused as the service refuses them."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.deployments.models import Revision
from tests.deployments.canary import canary_in_progress, rolled_back_by_analysis

pytestmark = pytest.mark.django_db

BUTTONS = ("rollout-promote", "rollout-pause", "rollout-resume", "rollout-abort")


def _page(client, revision: Revision):
    return client.get(reverse("deployments:revision_detail", kwargs={"pk": revision.pk}))


def _buttons(html: str) -> set[str]:
    return {b for b in BUTTONS if f'id="{b}"' in html}


def _post(client, revision: Revision, action: str, **kwargs):
    return client.post(reverse(f"deployments:revision_{action}", kwargs={"pk": revision.pk}), **kwargs)


class RevisionPageRolloutTests:
    def test_a_lead_sees_the_traffic_bar_the_plan_the_checks_the_charts_and_the_buttons(
        self, client, alice, deployment
    ):
        revision = canary_in_progress(deployment, requested_by=alice)
        client.force_login(alice)
        response = _page(client, revision)
        html = response.content.decode()
        assert response.status_code == 200
        bar = re.search(r'<div class="trafficbar" id="traffic-bar" data-stable="(\d+)" data-candidate="(\d+)"', html)
        assert bar and bar.groups() == ("50", "50")
        assert "r2 · 50%" in html and "r3 · 50%" in html  # labelled with the revisions
        assert "20% → 50% → 100% of traffic, each step held 60 s" in html
        assert "error rate ≤ 1%, p99 ≤ 500 ms, drift (PSI) ≤ 0.25" in html
        assert 'id="rollout-interval">interval 2 of 2<' in html and "Analysing" in html
        due = re.search(r'data-due="([^"]+)"', html)
        assert due and due.group(1) == (revision.step_started_at + timezone.timedelta(seconds=60)).isoformat()
        # the checks, newest first; the failed one stands out and says by how much it missed
        rows = re.findall(r"<tr class=\"check-(\w+)[^\"]*\" data-metric=\"(\w+)\"", html)
        assert len(rows) == 12
        assert [m for v, m in rows if v == "fail"] == ["p99_ms"]
        assert "730 ms" in html and "max 500 ms" in html and "230 ms over the maximum" in html
        # one chart per metric with values, each revision a line against the threshold
        figures = {metric: figure for metric, _, figure in response.context["rollout"].figures}
        assert list(figures) == ["error_rate", "p99_ms", "drift"]
        assert [t["name"] for t in figures["p99_ms"]["data"]] == ["r3", "r2", "failed"]
        assert figures["p99_ms"]["layout"]["shapes"][0]["y0"] == 500
        assert figures["error_rate"]["data"][0]["y"] == pytest.approx([0.4, 0.3])  # percent
        assert 'id="chart-p99_ms" data-figure="figure-p99_ms"' in html and 'id="figure-p99_ms"' in html
        assert _buttons(html) == {"rollout-promote", "rollout-pause", "rollout-abort"}
        assert 'data-confirm="Abort the rollout of r3 (v2) in dev? All traffic goes back to r2 now."' in html
        assert "deployments/confirm." in html and "deployments/rollout." in html and "plotly-" in html

    def test_a_viewer_sees_the_rollout_and_no_buttons(self, client, carol, deployment):
        revision = canary_in_progress(deployment)
        client.force_login(carol)
        html = _page(client, revision).content.decode()
        assert 'id="traffic-bar"' in html and 'id="checks"' in html
        assert _buttons(html) == set() and "rollout-actions" not in html

    def test_a_paused_rollout_offers_resume_and_says_who_paused_it(self, client, alice, dave, deployment):
        revision = canary_in_progress(deployment)
        Revision.objects.filter(pk=revision.pk).update(paused_at=timezone.now(), paused_by=dave)
        client.force_login(alice)
        html = _page(client, revision).content.decode()
        assert _buttons(html) == {"rollout-promote", "rollout-resume", "rollout-abort"}
        assert "Paused by <b>dave</b> at 50% of traffic" in html and "data-due" not in html

    def test_a_shadow_rollout_shows_the_mirror_and_no_client_traffic_on_the_candidate(self, client, alice, deployment):
        strategy = {"type": "shadow", "intervals": 2, "mirror_percent": 30, "min_agreement": 0.98}
        revision = canary_in_progress(deployment, strategy=strategy)
        Revision.objects.filter(pk=revision.pk).update(canary_weight=0)
        client.force_login(alice)
        html = _page(client, revision).content.decode()
        assert 'data-stable="100" data-candidate="0"' in html
        assert "30% of live requests mirrored to <b>r3</b>, its answers discarded" in html
        assert "agreement ≥ 98%" in html and "2 intervals of 60 s" in html

    def test_before_the_traffic_step_the_live_revision_serves_everything(self, client, alice, deployment):
        revision = canary_in_progress(deployment)
        Revision.objects.filter(pk=revision.pk).update(
            status="queued", canary_weight=0, rollout_step=0, step_started_at=None, failed_checks=0
        )
        revision.steps.update(status="pending", message="")
        revision.checks.all().delete()
        client.force_login(alice)
        html = _page(client, revision).content.decode()
        assert 'data-stable="100" data-candidate="0"' in html and "Starts after the smoke test" in html
        assert "No checks yet: the first comes at the end of the first interval (60 s)." in html
        assert 'id="rollout-interval"' not in html and "data-due" not in html
        assert _buttons(html) == {"rollout-promote", "rollout-pause", "rollout-abort"}

    def test_an_all_at_once_revision_has_no_rollout_card(self, client, alice, deployment):
        client.force_login(alice)
        html = _page(client, deployment.live_revision).content.decode()
        assert 'id="rollout"' not in html and "plotly-" not in html

    def test_a_rolled_back_revision_says_which_check_failed_and_by_how_much(self, client, carol, deployment):
        revision = rolled_back_by_analysis(deployment)
        client.force_login(carol)
        html = _page(client, revision).content.decode()
        assert "Rolled back by analysis" in html and "error rate 12.0% on r3; rolled back to r2" in html
        failed = re.search(r'<div class="callout rollout-note bad" id="rollout-failed">(.*?)</div>', html, re.S)
        assert failed, "the failed checks are called out"
        called_out = failed.group(1)
        assert "what failed at 50% (interval 2)" in called_out
        assert "<b>Error rate</b> of r3: 12.0% against max 1.00%, <b>11.0 points over the maximum</b>" in called_out
        assert "Latency p99" not in called_out  # an earlier, tolerated failure: in the table, not here
        assert 'data-stable="100" data-candidate="0"' in html and _buttons(html) == set()

    def test_the_card_alone_is_served_for_the_live_refresh_with_the_key_the_page_compares(
        self, client, alice, deployment
    ):
        revision = canary_in_progress(deployment)
        client.force_login(alice)
        card = client.get(reverse("deployments:revision_rollout", kwargs={"pk": revision.pk})).content.decode()
        assert card.lstrip().startswith('<div class="card rollout" id="rollout"') and "<html" not in card
        answer = client.get(reverse("deployments-api:revision_detail", kwargs={"pk": revision.pk})).json()
        # rollout.js computes the same key from the API's answer (revision.js polls it) to know when to fetch
        key = "|".join([answer["status"], str(answer["canary_weight"]), str(answer["paused"]).lower()])
        assert f'data-key="{key}|{len(answer["analysis"])}"' in card


class RolloutControlViewTests:
    @pytest.mark.parametrize(
        ("action", "fields", "message"),
        [
            ("promote", {"control": "promote"}, "r3 is promoted now"),
            ("pause", {"paused_by__username": "alice"}, "r3 is paused at 50% of traffic"),
            (
                "abort",
                {"control": "abort", "control_by__username": "alice"},
                "Aborting r3: all traffic goes back to r2",
            ),
        ],
    )
    def test_each_button_asks_the_rollout_and_says_so(self, client, alice, deployment, action, fields, message):
        revision = canary_in_progress(deployment)
        client.force_login(alice)
        response = _post(client, revision, action)
        assert response.status_code == 302 and response["Location"] == reverse(
            "deployments:revision_detail", kwargs={"pk": revision.pk}
        )
        assert Revision.objects.filter(pk=revision.pk, **fields).exists()
        assert AuditEvent.objects.filter(action=f"deployment.rollout_{action}", target_id=str(revision.pk)).exists()
        assert message in client.get(response["Location"]).content.decode()

    def test_resume_after_pause_starts_the_interval_again(self, client, alice, deployment):
        revision = canary_in_progress(deployment)
        client.force_login(alice)
        _post(client, revision, "pause")
        response = _post(client, revision, "resume", follow=True)
        revision.refresh_from_db()
        assert revision.paused_at is None and (timezone.now() - revision.step_started_at).total_seconds() < 60
        assert "r3 resumes" in response.content.decode()
        assert _buttons(response.content.decode()) == {"rollout-promote", "rollout-pause", "rollout-abort"}

    def test_the_abort_page_says_who_asked(self, client, alice, deployment):
        revision = canary_in_progress(deployment)
        client.force_login(alice)
        html = _post(client, revision, "abort", follow=True).content.decode()
        assert "Abort requested by <b>alice</b>" in html and "Aborting" in html
        assert _buttons(html) == set()  # nothing more to ask of a rollout being aborted

    def test_an_all_at_once_revision_is_refused_with_409(self, client, alice, deployment):
        live = deployment.live_revision
        Revision.objects.filter(pk=live.pk).update(status="running")
        client.force_login(alice)
        response = _post(client, live, "promote")
        assert response.status_code == 409
        assert "r2 rolls out all at once; there is nothing to promote." in response.content.decode()
        assert 'class="msg-error status-409 code-not_progressive"' in response.content.decode()

    def test_a_finished_rollout_is_refused_with_409(self, client, alice, deployment):
        revision = rolled_back_by_analysis(deployment)
        client.force_login(alice)
        response = _post(client, revision, "abort")
        assert response.status_code == 409
        assert "r3 is rolled back; only a rollout in progress can be steered." in response.content.decode()
        assert Revision.objects.get(pk=revision.pk).control == ""

    @pytest.mark.parametrize(("action", "phrase"), [("pause", "deploy"), ("abort", "roll back")])
    def test_a_viewer_is_refused_with_403(self, client, carol, deployment, action, phrase):
        revision = canary_in_progress(deployment)
        client.force_login(carol)
        response = _post(client, revision, action)
        assert response.status_code == 403
        assert f"Only ML leads and admins of dev may {phrase}; carol is viewer there." in response.content.decode()
        revision.refresh_from_db()
        assert (revision.control, revision.paused_at) == ("", None)

    def test_the_buttons_take_post_only(self, client, alice, deployment):
        revision = canary_in_progress(deployment)
        client.force_login(alice)
        assert client.get(reverse("deployments:revision_abort", kwargs={"pk": revision.pk})).status_code == 405
