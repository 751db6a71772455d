"""Login throttling (django-axes): a username is locked out from one address after repeated failures."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from apps.accounts.models import AuditEvent
from apps.accounts.throttling import client_ip
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _login(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


class LoginThrottlingTests:
    def test_failures_below_the_limit_leave_the_account_usable(self, client, carol):
        for _ in range(2):
            assert _login(client, "carol", "wrong").status_code == 200
        assert _login(client, "carol", PASSWORD).status_code == 302

    def test_the_limit_locks_the_username_from_that_address_even_with_the_right_password(self, client, carol):
        for _ in range(3):
            _login(client, "carol", "wrong")
        response = _login(client, "carol", PASSWORD)
        assert response.status_code == 429
        page = response.content.decode()
        assert "Too many failed sign-ins for carol" in page and "blocked for 15 minutes" in page
        assert "_auth_user_id" not in client.session
        event = AuditEvent.objects.filter(action="login.locked_out").latest("id")
        assert event.data["username"] == "carol" and event.data["address"] == "10.0.0.1"

    def test_other_addresses_and_other_usernames_are_not_locked(self, client, carol, alice):
        for _ in range(3):
            _login(client, "carol", "wrong")
        assert _login(Client(), "carol", PASSWORD, address="10.0.0.2").status_code == 302
        assert _login(Client(), "alice", PASSWORD).status_code == 302

    def test_a_success_resets_the_count(self, client, carol):
        for _ in range(2):
            _login(client, "carol", "wrong")
        assert _login(client, "carol", PASSWORD).status_code == 302
        client.logout()
        for _ in range(2):
            _login(client, "carol", "wrong")
        assert _login(client, "carol", PASSWORD).status_code == 302

    def test_the_lockout_ends_after_the_cool_off(self, client, carol, settings):
        from datetime import timedelta

        for _ in range(3):
            _login(client, "carol", "wrong")
        assert _login(client, "carol", PASSWORD).status_code == 429
        settings.AXES_COOLOFF_TIME = timedelta(seconds=0)
        assert _login(client, "carol", PASSWORD).status_code == 302

    def test_the_admin_login_is_throttled_too(self, client, dave):
        for _ in range(3):
            client.post("/admin/login/", {"username": "dave", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
        response = client.post("/admin/login/", {"username": "dave", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
        assert response.status_code == 429
        assert "_auth_user_id" not in client.session


class ClientAddressTests:
    def test_behind_the_ingress_the_address_it_appended_counts(self, settings):
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7", REMOTE_ADDR="10.244.0.5")
        assert client_ip(request) == "203.0.113.7"  # not the spoofable first entry

    def test_without_a_proxy_forwarded_headers_are_ignored(self, settings):
        settings.SECURE_PROXY_SSL_HEADER = None
        request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.2.3.4", REMOTE_ADDR="198.51.100.3")
        assert client_ip(request) == "198.51.100.3"
