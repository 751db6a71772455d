"""A promotion request keeps what it compared when it was made: after it executed (and the candidate is what
serves), its page and the API still show the candidate against the version that served then, with each
metric's direction, and what serves now apart from it. Real MLflow registry, real PostgreSQL."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Deployment, Revision
from apps.promotions import services
from apps.promotions.choices import PromotionStatus
from apps.promotions.models import PromotionRequest
from tests.promotions.helpers import MODEL, make_live

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob_api(bob) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=bob, name='t').key}")
    return client


@pytest.fixture
def executed(alice, bob, environments, promo_registry) -> PromotionRequest:
    """v1 served production when alice asked for v2; bob approved, and the rollout of v2 finished (rows only)."""
    make_live(environments["production"], "1")
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="200 trees beat 50"
    )
    promotion = services.promotion_approve(actor=bob, promotion=promotion, comment="ship it")
    assert promotion.status == PromotionStatus.EXECUTED, promotion.execution_error
    revision = promotion.executed_revision  # the worker's part, as rows: the rollout finished
    Revision.objects.filter(pk=revision.pk).update(status=RevisionStatus.LIVE, finished_at=timezone.now())
    revision.deployment.revisions.exclude(pk=revision.pk).update(status=RevisionStatus.SUPERSEDED)
    Deployment.objects.filter(pk=revision.deployment_id).update(live_revision=revision)
    return promotion


def _runs(mlflow_client) -> dict[str, dict[str, float]]:
    versions = {str(mv.version): mv for mv in mlflow_client.search_model_versions(f"name = '{MODEL}'")}
    return {v: mlflow_client.get_run(versions[v].run_id).data.metrics for v in ("1", "2")}


def test_the_request_keeps_the_comparison_it_was_made_with(executed, mlflow_client):
    snapshot = executed.comparison
    metrics = _runs(mlflow_client)
    assert (snapshot["candidate_version"], snapshot["live_version"], snapshot["live_from"]) == ("2", "1", "revision")
    assert snapshot["live_revision"]["label"] == "r1"
    rows = {m["name"]: m for m in snapshot["metrics"]}
    assert set(rows) == {"accuracy", "roc_auc", "f1", "log_loss"}
    for name, row in rows.items():
        assert (row["candidate"], row["live"]) == (metrics["2"][name], metrics["1"][name])
        assert row["delta"] == pytest.approx(metrics["2"][name] - metrics["1"][name])
    assert rows["log_loss"]["better"] == "lower" and rows["roc_auc"]["better"] == "higher"
    assert {(p["name"], p["before"], p["after"]) for p in snapshot["params"]} >= {("n_estimators", "50", "200")}
    assert snapshot["signature"] == [] and snapshot["notes"] == []


def test_after_execution_the_page_shows_what_was_approved_and_what_is_live_now(client, bob, executed, mlflow_client):
    metrics = _runs(mlflow_client)
    client.force_login(bob)
    page = client.get(f"/promotions/{executed.pk}/").content.decode()
    comparison = page[page.index('id="comparison"') :]
    assert "What was compared when v2 was requested" in comparison and "Live v1" in comparison
    assert "production served" in comparison and "No param changed." not in comparison
    assert "n_estimators" in comparison[comparison.index('id="params"') :]
    delta = metrics["2"]["log_loss"] - metrics["1"]["log_loss"]
    verdict = "better" if delta < 0 else "worse"  # lower log_loss is better
    assert f'data-metric="log_loss" data-verdict="{verdict}"' in comparison
    assert f"{delta:+.4g} {verdict}" in comparison
    live_now = page[page.index('id="live-now"') : page.index('id="comparison"')]
    assert "Now live in production:" in live_now and ">v2</a>" in live_now and "alias names v2" in live_now
    assert 'id="live-changed"' not in page  # executed: no warning that the baseline moved


def test_the_api_answers_the_snapshot_and_the_live_state_apart(bob_api, executed):
    body = bob_api.get(f"/api/v1/promotions/{executed.pk}/").json()
    assert body["comparison"]["live_version"] == "1" and body["comparison"]["candidate_version"] == "2"
    assert {m["name"]: m["better"] for m in body["comparison"]["metrics"]}["log_loss"] == "lower"
    assert body["live_now"]["version"] == "2" and body["live_now"]["alias_version"] == "2"
    assert body["live_now"]["revision"]["id"] == executed.executed_revision_id
    assert body["live_now"]["rolling_out"] is None
    listed = bob_api.get("/api/v1/promotions/").json()["results"]
    assert listed[0]["comparison"] == body["comparison"]


def test_the_snapshot_is_shown_while_the_registry_is_down(client, bob, executed, settings):
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://127.0.0.1:9"  # nothing listens
    settings.MLFLOW_HTTP_REQUEST_MAX_RETRIES = 0
    client.force_login(bob)
    page = client.get(f"/promotions/{executed.pk}/").content.decode()
    assert "Live v1" in page and "n_estimators" in page
    assert "The registry cannot be read right now" in page[page.index('id="live-now"') : page.index('id="comparison"')]


def test_a_decided_request_without_a_snapshot_says_it_was_not_recorded(client, bob, bob_api, executed):
    PromotionRequest.objects.filter(pk=executed.pk).update(comparison=None)  # as requests made before 0003
    client.force_login(bob)
    page = client.get(f"/promotions/{executed.pk}/").content.decode()
    assert 'id="no-snapshot"' in page and "Not recorded" in page
    assert 'id="metrics"' not in page  # never v2 against v2
    assert bob_api.get(f"/api/v1/promotions/{executed.pk}/").json()["comparison"] is None


def test_a_pending_request_without_a_snapshot_is_compared_now_and_says_so(
    client, bob, alice, environments, promo_registry
):
    make_live(environments["production"], "1")
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="x"
    )
    PromotionRequest.objects.filter(pk=promotion.pk).update(comparison=None)
    client.force_login(bob)
    page = client.get(f"/promotions/{promotion.pk}/").content.decode()
    assert 'id="not-recorded"' in page and "Live v1" in page and "production served" in page


def test_a_pending_request_warns_when_the_environment_moved_on(client, bob, alice, environments, promo_registry):
    promotion = services.promotion_request(
        actor=alice, model_name="customer-churn", version="3", environment="production", justification="x"
    )
    make_live(environments["production"], "1", model="customer-churn")  # another version went live meanwhile
    client.force_login(bob)
    page = client.get(f"/promotions/{promotion.pk}/").content.decode()
    assert 'id="live-changed"' in page and "production now serves v1; when this request was made it served v2" in page


def test_a_model_tag_overrides_the_direction_of_a_metric(alice, environments, promo_registry, mlflow_client):
    mlflow_client.set_registered_model_tag(MODEL, "modelplane.lower_is_better", "accuracy, f1")
    mlflow_client.set_registered_model_tag(MODEL, "modelplane.higher_is_better", "log_loss")
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="x"
    )
    better = {m["name"]: m["better"] for m in promotion.comparison["metrics"]}
    assert better == {"accuracy": "lower", "f1": "lower", "log_loss": "higher", "roc_auc": "higher"}
