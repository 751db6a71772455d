"""People manage their own API tokens on /accounts/tokens/: create (the key shown once), list, revoke."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, AuditEvent
from apps.accounts.services import api_token_create
from tests.accounts.helpers import CsrfClient

pytestmark = pytest.mark.django_db

URL = "/accounts/tokens/"


def _key_in(html: str) -> str:
    match = re.search(r'id="token-key" value="([^"]+)"', html)
    assert match, "the page does not show a new key"
    return match.group(1)


def _works(key: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/tokens/").status_code == 200


class TokenPageTests:
    def test_a_viewer_creates_a_token_and_sees_the_key_exactly_once(self, carol):
        browser = CsrfClient(carol)
        response = browser.post(URL, {"name": "laptop notebook", "expires_on": ""})
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        html = response.content.decode()
        key = _key_in(html)
        assert "only this once" in html and _works(key)
        token = ApiToken.objects.get(user=carol)
        assert token.name == "laptop notebook" and token.key_hash == ApiToken.hash_key(key)
        assert key not in (token.key_hash, token.prefix)
        again = browser.get(URL).content.decode()
        assert key not in again and "laptop notebook" in again and f"{key[:8]}…" in again

    def test_the_expiry_date_is_the_end_of_that_day(self, carol):
        day = (timezone.now() + timedelta(days=30)).date()
        CsrfClient(carol).post(URL, {"name": "ci", "expires_on": day.isoformat()})
        expires = ApiToken.objects.get().expires_at
        assert expires.date() == day and (expires.hour, expires.minute) == (23, 59)

    def test_a_date_in_the_past_is_refused_with_the_reason(self, carol):
        yesterday = (timezone.now() - timedelta(days=1)).date().isoformat()
        response = CsrfClient(carol).post(URL, {"name": "old", "expires_on": yesterday})
        assert response.status_code == 400 and "must be in the future" in response.content.decode()
        assert not ApiToken.objects.exists()

    def test_a_token_needs_a_name(self, carol):
        response = CsrfClient(carol).post(URL, {"name": "", "expires_on": ""})
        assert response.status_code == 400 and not ApiToken.objects.exists()

    def test_creating_without_the_csrf_token_is_refused(self, carol):
        response = CsrfClient(carol).post_without_csrf(URL, {"name": "forged"})
        assert response.status_code == 403 and not ApiToken.objects.exists()

    def test_the_list_shows_only_my_tokens(self, carol, alice):
        api_token_create(user=alice, name="alice-secret-laptop")
        api_token_create(user=carol, name="carol-ci")
        html = CsrfClient(carol).get(URL).content.decode()
        assert "carol-ci" in html and "alice-secret-laptop" not in html

    def test_revoking_stops_the_token_and_is_audited(self, carol):
        created = api_token_create(user=carol, name="ci")
        response = CsrfClient(carol).post(f"/accounts/tokens/{created.token.pk}/revoke/")
        assert response.status_code == 302 and response["Location"] == URL
        created.token.refresh_from_db()
        assert created.token.revoked_at is not None and not _works(created.key)
        event = AuditEvent.objects.get(action="api_token.revoke")
        assert event.actor == carol and event.source == "ui" and event.via == "session"
        assert event.data == {"token": "ci", "prefix": created.key[:8], "owner": "carol"}
        assert "Revoked" in CsrfClient(carol).get(URL).content.decode()

    def test_revoking_someone_elses_token_is_not_found(self, carol, alice):
        created = api_token_create(user=alice, name="alice")
        response = CsrfClient(carol).post(f"/accounts/tokens/{created.token.pk}/revoke/")
        assert response.status_code == 404
        created.token.refresh_from_db()
        assert created.token.revoked_at is None and _works(created.key)

    def test_revoking_needs_the_csrf_token(self, carol):
        created = api_token_create(user=carol, name="ci")
        assert CsrfClient(carol).post_without_csrf(f"/accounts/tokens/{created.token.pk}/revoke/").status_code == 403
        created.token.refresh_from_db()
        assert created.token.revoked_at is None

    def test_the_nav_links_to_tokens_for_everyone_and_audit_only_for_readers(self, carol, bob, dave):
        carol_page = CsrfClient(carol).get(URL).content.decode()
        assert 'href="/accounts/tokens/"' in carol_page and 'href="/audit/"' not in carol_page
        bob_page = CsrfClient(bob).get(URL).content.decode()
        assert 'href="/audit/"' in bob_page and 'href="/accounts/service-accounts/"' not in bob_page
        dave_page = CsrfClient(dave).get(URL).content.decode()
        assert 'href="/audit/"' in dave_page and 'href="/accounts/service-accounts/"' in dave_page
