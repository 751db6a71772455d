"""The API conventions hold on every endpoint: pagination shape, shared filters, error shape, 202 + status URL,
Idempotency-Key on every POST that starts work, ETag/If-Match where two people edit the same settings."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.deployments.filtersets import DeploymentFilterSet
from apps.deployments.models import Deployment, Revision
from apps.deployments.selectors import deployment_list
from apps.promotions import services as promotions
from apps.promotions.models import PromotionRequest, PromotionReview
from tests.promotions.helpers import MODEL, make_live

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


@pytest.fixture
def served(environments):
    """credit-default in dev: r1 (v1) superseded, r2 (v2) live."""
    make_live(environments["dev"], "1")
    return make_live(environments["dev"], "2").deployment


@pytest.fixture
def pending(alice, environments, promo_registry) -> PromotionRequest:
    return promotions.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="AUC +0.02"
    )


# ---------------------------------------------------------------------------- pagination and filters
class PaginationTests:
    @pytest.mark.parametrize(
        "url",
        [
            "/api/v1/deployments/",
            "/api/v1/environments/",
            "/api/v1/promotions/",
            "/api/v1/models/",
            f"/api/v1/models/{MODEL}/versions/",
        ],
    )
    def test_every_list_has_the_drf_shape(self, carol, served, pending, url):
        body = _client(carol).get(url, {"page_size": 1}).json()
        assert set(body) == {"count", "next", "previous", "results"} and len(body["results"]) == 1

    def test_the_registry_lists_say_count_null_and_still_page(self, carol, registry):
        client = _client(carol)
        first = client.get("/api/v1/models/", {"page_size": 1}).json()
        assert first["count"] is None and first["next"] and first["previous"] is None
        second = client.get(first["next"]).json()
        assert second["results"][0]["name"] != first["results"][0]["name"] and second["previous"]

    def test_a_page_past_the_end_is_a_404_in_the_error_shape(self, carol, served):
        response = _client(carol).get("/api/v1/deployments/", {"page": 99})
        assert response.status_code == 404 and response.json()["code"] == "not_found"


class SharedFilterTests:
    def test_the_api_and_the_page_filter_with_the_same_filterset(self, carol, served, environments):
        make_live(environments["staging"], "1")
        params = {"environment": "staging"}
        page = DeploymentFilterSet(params, queryset=deployment_list()).qs
        api = _client(carol).get("/api/v1/deployments/", params).json()["results"]
        assert [d["id"] for d in api] == [d.pk for d in page] and len(api) == 1

    def test_a_bad_filter_value_is_a_400_naming_it(self, carol, served):
        response = _client(carol).get("/api/v1/promotions/", {"status": "bogus"})
        assert response.status_code == 400 and "status" in response.json()["errors"]


# ---------------------------------------------------------------------------- errors
class ErrorShapeTests:
    def test_an_unknown_api_url_is_a_json_404(self, carol):
        response = _client(carol).get("/api/v1/nothing-here/")
        assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}

    def test_a_wrong_method_is_a_405_with_a_code(self, carol):
        response = _client(carol).put("/api/v1/environments/", {}, format="json")
        assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"

    def test_a_wrong_media_type_is_a_415_with_a_code(self, alice, environments):
        response = _client(alice).post("/api/v1/deployments/", "model=x", content_type="text/plain")
        assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"

    def test_a_list_body_is_a_400_with_non_field_errors(self, alice, environments):
        response = _client(alice).post("/api/v1/deployments/", [1, 2], format="json")
        assert response.status_code == 400 and "non_field_errors" in response.json()["errors"]

    def test_a_malformed_idempotency_key_is_named(self, alice, environments, registry):
        body = {"model": MODEL, "version": "2", "environment": "dev"}
        response = _client(alice).post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="x" * 201)
        assert response.status_code == 400 and "Idempotency-Key" in response.json()["errors"]


# ---------------------------------------------------------------------------- long work: 202 + status URL
class AcceptedTests:
    def test_delete_answers_202_with_the_deployment_to_poll(self, alice, served):
        client = _client(alice)
        response = client.delete(f"/api/v1/deployments/{served.pk}/")
        assert response.status_code == 202 and response.json()["status"] == "deleting"
        assert response["Location"] == response.json()["url"]
        assert client.get(response["Location"]).json()["id"] == served.pk

    def test_rollback_answers_202_with_the_revision_to_poll(self, alice, served):
        client = _client(alice)
        response = client.post(f"/api/v1/deployments/{served.pk}/rollback/", {"revision": 1}, format="json")
        assert response.status_code == 202 and response.json()["kind"] == "rollback"
        assert client.get(response["Location"]).json()["id"] == response.json()["id"]


# ---------------------------------------------------------------------------- Idempotency-Key
class IdempotencyKeyTests:
    def test_a_retried_rollback_starts_one_revision(self, alice, served):
        client = _client(alice)
        url = f"/api/v1/deployments/{served.pk}/rollback/"
        first = client.post(url, {"revision": 1}, format="json", HTTP_IDEMPOTENCY_KEY="rb-1")
        again = client.post(url, {"revision": 1}, format="json", HTTP_IDEMPOTENCY_KEY="rb-1")
        assert (first.status_code, again.status_code) == (202, 202) and first.json() == again.json()
        assert Revision.objects.filter(deployment=served, kind="rollback").count() == 1

    def test_a_key_reused_for_another_request_is_a_409(self, alice, served, registry):
        client = _client(alice)
        body = {"model": MODEL, "version": "1", "environment": "staging"}
        assert client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 202
        response = client.post(
            f"/api/v1/deployments/{served.pk}/rollback/", {"revision": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert response.status_code == 409 and response.json()["code"] == "idempotency_key_reused"
        assert "'k'" in response.json()["detail"] and "staging" in response.json()["detail"]

    def test_a_retried_delete_answers_the_same_and_the_key_cannot_delete_another(self, alice, served, environments):
        other = make_live(environments["staging"], "1").deployment
        client = _client(alice)
        first = client.delete(f"/api/v1/deployments/{served.pk}/", HTTP_IDEMPOTENCY_KEY="del-1")
        again = client.delete(f"/api/v1/deployments/{served.pk}/", HTTP_IDEMPOTENCY_KEY="del-1")
        assert (first.status_code, again.status_code) == (202, 202) and first.json()["id"] == again.json()["id"]
        refused = client.delete(f"/api/v1/deployments/{other.pk}/", HTTP_IDEMPOTENCY_KEY="del-1")
        assert refused.status_code == 409 and refused.json()["code"] == "idempotency_key_reused"
        assert Deployment.objects.get(pk=other.pk).status == "live"

    def test_a_retried_promotion_request_creates_one_request(self, alice, environments, promo_registry):
        client = _client(alice)
        body = {"model": MODEL, "version": "2", "environment": "production", "justification": "AUC +0.02"}
        first = client.post("/api/v1/promotions/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
        again = client.post("/api/v1/promotions/", body, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
        assert (first.status_code, again.status_code) == (201, 201) and first.json()["id"] == again.json()["id"]
        assert PromotionRequest.objects.count() == 1 and again.json()["status"] == "pending"
        changed = client.post(
            "/api/v1/promotions/", {**body, "justification": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="p-1"
        )
        assert changed.status_code == 409 and changed.json()["code"] == "idempotency_key_reused"

    def test_a_retried_approval_answers_the_same_and_the_key_cannot_decide_another(self, bob, pending):
        client = _client(bob)
        url = f"/api/v1/promotions/{pending.pk}/approve/"
        first = client.post(url, {"comment": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="a-1")
        again = client.post(url, {"comment": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="a-1")
        assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
        assert PromotionReview.objects.filter(request=pending).count() == 1
        reject = client.post(
            f"/api/v1/promotions/{pending.pk}/reject/", {"comment": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="a-1"
        )
        assert reject.status_code == 409 and reject.json()["code"] == "idempotency_key_reused"


# ---------------------------------------------------------------------------- optimistic concurrency
class IfMatchTests:
    def test_a_stale_if_match_is_a_412_and_writes_nothing(self, alice, served):
        client = _client(alice)
        url = f"/api/v1/deployments/{served.pk}/monitoring/thresholds/"
        read = client.get(url)
        etag = read["ETag"]
        assert etag and read.json()
        first = client.put(url, {"psi_warn": 0.2, "psi_alert": 0.4}, format="json", HTTP_IF_MATCH=etag)
        assert first.status_code == 200 and first["ETag"] != etag
        stale = client.put(url, {"psi_warn": 0.3, "psi_alert": 0.5}, format="json", HTTP_IF_MATCH=etag)
        assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
        assert client.get(url).json() == {"psi_warn": 0.2, "psi_alert": 0.4}

    def test_without_if_match_the_write_overwrites(self, alice, served):
        url = f"/api/v1/deployments/{served.pk}/monitoring/thresholds/"
        response = _client(alice).put(url, {"psi_warn": 0.2, "psi_alert": 0.4}, format="json")
        assert response.status_code == 200 and response.json()["psi_alert"] == 0.4
