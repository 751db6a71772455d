"""``/api/v1/tokens/``: the same as the tokens page, for scripts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, AuditEvent
from apps.accounts.services import api_token_create
from tests.accounts.helpers import token_client

pytestmark = pytest.mark.django_db


def _client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


class TokenApiTests:
    def test_creating_answers_the_key_once_and_stores_only_its_hash(self, carol):
        client = token_client(carol)
        response = client.post("/api/v1/tokens/", {"name": "github-actions"}, format="json")
        assert response.status_code == 201 and response["Cache-Control"] == "no-store"
        body = response.json()
        key = body["key"]
        assert body["name"] == "github-actions" and body["prefix"] == key[:8] and body["active"] is True
        row = ApiToken.objects.get(pk=body["id"])
        assert row.key_hash == ApiToken.hash_key(key) and key not in str(row.__dict__)
        listed = client.get("/api/v1/tokens/").json()
        assert set(listed) == {"count", "next", "previous", "results"} and listed["count"] == 2
        assert all("key" not in t for t in listed["results"]) and key not in str(listed)
        assert "key" not in client.get(f"/api/v1/tokens/{row.pk}/").json()
        assert _client_for(key).get("/api/v1/tokens/").status_code == 200

    def test_an_expiry_is_kept_and_a_past_one_refused(self, carol):
        client = token_client(carol)
        later = timezone.now() + timedelta(days=7)
        response = client.post("/api/v1/tokens/", {"name": "week", "expires_at": later.isoformat()}, format="json")
        assert response.status_code == 201 and ApiToken.objects.get(name="week").expires_at == later
        past = (timezone.now() - timedelta(hours=1)).isoformat()
        refused = client.post("/api/v1/tokens/", {"name": "old", "expires_at": past}, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "token_expiry_past"

    def test_a_missing_name_is_a_named_field_error(self, carol):
        response = token_client(carol).post("/api/v1/tokens/", {}, format="json")
        assert response.status_code == 400 and "name" in response.json()["errors"]

    def test_delete_revokes_and_the_key_stops_working(self, carol):
        created = api_token_create(user=carol, name="ci")
        client = token_client(carol)
        assert client.delete(f"/api/v1/tokens/{created.token.pk}/").status_code == 204
        refused = _client_for(created.key).get("/api/v1/tokens/")
        assert refused.status_code == 401 and refused.json()["detail"] == "Invalid or revoked token."
        assert ApiToken.objects.get(pk=created.token.pk).revoked_at is not None

    def test_post_revoke_is_idempotent_and_audited_once(self, carol):
        created = api_token_create(user=carol, name="ci")
        client = token_client(carol)
        first = client.post(f"/api/v1/tokens/{created.token.pk}/revoke/")
        second = client.post(f"/api/v1/tokens/{created.token.pk}/revoke/")
        assert first.status_code == second.status_code == 200
        assert first.json()["revoked_at"] == second.json()["revoked_at"] and first.json()["active"] is False
        assert AuditEvent.objects.filter(action="api_token.revoke").count() == 1

    def test_a_token_can_revoke_itself(self, carol):
        created = api_token_create(user=carol, name="self")
        client = _client_for(created.key)
        assert client.delete(f"/api/v1/tokens/{created.token.pk}/").status_code == 204
        assert client.get("/api/v1/tokens/").status_code == 401

    def test_nobody_sees_or_revokes_another_persons_token(self, carol, dave):
        theirs = api_token_create(user=carol, name="carol-ci")
        admin = token_client(dave)  # not even an admin, through this endpoint
        assert admin.get(f"/api/v1/tokens/{theirs.token.pk}/").status_code == 404
        assert admin.delete(f"/api/v1/tokens/{theirs.token.pk}/").json()["code"] == "token_not_found"
        assert admin.post(f"/api/v1/tokens/{theirs.token.pk}/revoke/").status_code == 404
        assert "carol-ci" not in str(admin.get("/api/v1/tokens/").json())
        assert ApiToken.objects.get(pk=theirs.token.pk).revoked_at is None

    def test_an_expired_token_is_refused(self, carol):
        created = api_token_create(user=carol, name="x", expires_at=timezone.now() - timedelta(seconds=1))
        response = _client_for(created.key).get("/api/v1/tokens/")
        assert response.status_code == 401 and response.json()["detail"] == "Token expired."

    def test_session_calls_need_csrf(self, carol):
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(carol)
        assert client.get("/api/v1/tokens/").status_code == 200
        response = client.post("/api/v1/tokens/", {"name": "x"}, format="json")
        assert response.status_code == 403 and "CSRF" in response.json()["detail"]
        assert not ApiToken.objects.exists()
