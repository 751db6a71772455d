from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, AuditEvent
from apps.accounts.services import api_token_create
from apps.common.errors import ApplicationError

pytestmark = pytest.mark.django_db


def _get(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/runs/nothing/")  # any authenticated endpoint; auth is checked first


class ApiTokenCommandTests:
    def test_it_prints_a_working_token_as_the_last_line(self, carol, registry):
        out = StringIO()
        call_command("api_token", "carol", "--name", "notebook", stdout=out)
        key = out.getvalue().strip().splitlines()[-1]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/models/").status_code == 200

    def test_it_refuses_an_unknown_user(self, db):
        with pytest.raises(CommandError, match="No user named 'mallory'"):
            call_command("api_token", "mallory", stdout=StringIO())


class ApiTokenTests:
    def test_only_a_hash_of_the_key_is_stored(self, carol):
        created = api_token_create(user=carol, name="ci")
        row = ApiToken.objects.get()
        assert created.key not in (row.key_hash, row.prefix, row.name)
        assert row.key_hash == ApiToken.hash_key(created.key) and row.prefix == created.key[:8]

    def test_creating_a_token_is_audited_without_the_key(self, carol):
        created = api_token_create(user=carol, name="ci")
        event = AuditEvent.objects.get(action="api_token.create")
        assert event.actor == carol and created.key not in str(event.data)

    def test_a_token_needs_a_name(self, carol):
        with pytest.raises(ApplicationError, match="needs a name"):
            api_token_create(user=carol, name="  ")

    def test_wrong_revoked_and_expired_tokens_are_refused(self, carol):
        assert _get("not-a-token").status_code == 401
        revoked = api_token_create(user=carol, name="old")
        ApiToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
        assert _get(revoked.key).json()["detail"] == "Invalid or revoked token."
        expired = api_token_create(user=carol, name="x", expires_at=timezone.now() - timedelta(minutes=1))
        assert _get(expired.key).json()["detail"] == "Token expired."

    def test_a_token_of_a_deactivated_user_is_refused(self, carol):
        created = api_token_create(user=carol, name="x")
        carol.is_active = False
        carol.save()
        assert _get(created.key).status_code == 401

    def test_use_is_recorded(self, carol):
        created = api_token_create(user=carol, name="x")
        _get(created.key)
        assert ApiToken.objects.get().last_used_at is not None
