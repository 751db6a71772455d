from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.deployments.models import Revision

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


def _post(client, **body):
    return client.post("/api/v1/deployments/", body, format="json")


class DeploymentCreateApiTests:
    def test_it_answers_202_with_the_revision_and_its_steps(self, alice, environments, registry):
        response = _post(_client(alice), model="credit-default", version="2", environment="dev")
        assert response.status_code == 202
        body = response.json()
        assert (body["model"], body["model_version"], body["environment"], body["status"]) == (
            "credit-default",
            "2",
            "dev",
            "queued",
        )
        assert [s["name"] for s in body["steps"]][0] == "resolve" and body["requested_by"] == "alice"
        assert _client(alice).get(response["Location"]).json()["id"] == body["id"]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"version": "2", "environment": "dev"}, "model"),
            ({"model": "credit-default", "version": "two", "environment": "dev"}, "version"),
            ({"model": "credit-default", "version": "2"}, "environment"),
        ],
    )
    def test_missing_or_malformed_fields_are_named(self, alice, environments, registry, body, field):
        response = _client(alice).post("/api/v1/deployments/", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["errors"]

    def test_a_viewer_is_refused_with_a_reason(self, carol, environments, registry):
        response = _post(_client(carol), model="credit-default", version="2", environment="dev")
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden" and "ML leads" in response.json()["detail"]

    def test_a_gated_environment_is_refused_with_promotion_required(self, alice, environments, registry):
        response = _post(_client(alice), model="credit-default", version="2", environment="production")
        assert response.status_code == 409 and response.json()["code"] == "promotion_required"

    def test_an_unknown_model_is_a_404_naming_it(self, alice, environments, registry):
        response = _post(_client(alice), model="nope", version="1", environment="dev")
        assert response.status_code == 404 and "nope" in response.json()["detail"]

    def test_the_idempotency_key_header_is_honoured(self, alice, environments, registry):
        client = _client(alice)
        body = {"model": "credit-default", "version": "2", "environment": "dev"}
        first = client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc")
        second = client.post("/api/v1/deployments/", body, format="json", HTTP_IDEMPOTENCY_KEY="abc")
        assert first.json()["id"] == second.json()["id"] and Revision.objects.count() == 1

    def test_malformed_json_is_a_400(self, alice, environments, registry):
        response = _client(alice).post("/api/v1/deployments/", "{", content_type="application/json")
        assert response.status_code == 400


class DeploymentReadApiTests:
    def test_the_list_is_paginated_and_filterable(self, alice, environments, registry):
        client = _client(alice)
        _post(client, model="credit-default", version="2", environment="dev")
        _post(client, model="customer-churn", version="1", environment="staging")
        body = client.get("/api/v1/deployments/").json()
        assert body["count"] == 2 and set(body) == {"count", "next", "previous", "results"}
        only = client.get("/api/v1/deployments/", {"environment": "staging"}).json()["results"]
        assert [d["model"] for d in only] == ["customer-churn"]
        assert client.get("/api/v1/deployments/", {"model": "CREDIT"}).json()["count"] == 1
        assert client.get("/api/v1/deployments/", {"status": "bogus"}).status_code == 400

    def test_unknown_ids_are_404s(self, alice, environments):
        client = _client(alice)
        assert client.get("/api/v1/deployments/999/").json()["detail"] == "Deployment 999 does not exist."
        assert client.get("/api/v1/revisions/999/").status_code == 404

    def test_environments_are_listed(self, carol, environments):
        names = [e["name"] for e in _client(carol).get("/api/v1/environments/").json()["results"]]
        assert names == ["dev", "staging", "production"]

    def test_rollback_to_an_unknown_revision_is_a_404(self, alice, environments, registry):
        client = _client(alice)
        deployment = _post(client, model="credit-default", version="2", environment="dev").json()["deployment"]
        response = client.post(f"/api/v1/deployments/{deployment}/rollback/", {"revision": 7}, format="json")
        assert response.status_code == 404 and "r7" in response.json()["detail"]
        response = client.post(f"/api/v1/deployments/{deployment}/rollback/", {"revision": "x"}, format="json")
        assert response.status_code == 400 and "revision" in response.json()["errors"]

    def test_a_viewer_cannot_delete(self, alice, carol, environments, registry):
        deployment = _post(_client(alice), model="credit-default", version="2", environment="dev").json()["deployment"]
        assert _client(carol).delete(f"/api/v1/deployments/{deployment}/").status_code == 403
