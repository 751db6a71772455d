"""Service accounts for CI: admins create them, give them a role, issue and revoke their tokens. They never
log in to the UI. Everyone else gets a 403 saying why."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken, AuditEvent, User
from apps.accounts.services import api_token_create, service_account_create
from apps.common.errors import ConflictError, ForbiddenError
from tests.accounts.helpers import CsrfClient, token_client
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LIST = "/accounts/service-accounts/"


def _robot(dave, name: str = "ci-github", role: str = "lead") -> User:
    return service_account_create(actor=dave, username=name, role=role, description="GitHub Actions")


class ServiceAccountServiceTests:
    def test_it_has_a_role_and_no_usable_password(self, dave):
        robot = _robot(dave)
        assert robot.is_service_account and robot.role == "lead" and not robot.has_usable_password()
        assert not robot.is_staff and not robot.is_superuser
        event = AuditEvent.objects.get(action="service_account.create")
        assert event.actor == dave and event.data["role"] == "lead"

    def test_it_cannot_log_in_even_if_someone_sets_a_password(self, dave):
        robot = _robot(dave)
        robot.set_password(PASSWORD)
        robot.save()
        login = RequestFactory().post("/accounts/login/")
        assert authenticate(login, username="ci-github", password=PASSWORD) is None
        browser = Client()
        response = browser.post("/accounts/login/", {"username": "ci-github", "password": PASSWORD})
        assert response.status_code in (200, 403, 429) and "_auth_user_id" not in browser.session

    def test_only_admins_create_them(self, alice, bob):
        for actor in (alice, bob):
            with pytest.raises(ForbiddenError, match="Only admins may create service accounts"):
                service_account_create(actor=actor, username="sneaky", role="admin")
        assert not User.objects.filter(username="sneaky").exists()

    def test_names_are_unique_and_valid(self, dave, carol):
        _robot(dave)
        with pytest.raises(ConflictError, match="already an account"):
            _robot(dave, name="CI-GitHub")
        with pytest.raises(ConflictError):
            _robot(dave, name="carol")
        with pytest.raises(Exception, match="only letters"):
            _robot(dave, name="bad name!")

    def test_a_service_account_cannot_mint_its_own_tokens(self, dave):
        robot = _robot(dave)
        client = token_client(robot)  # issued by `manage.py api_token` (no actor), as before
        response = client.post("/api/v1/tokens/", {"name": "more"}, format="json")
        assert response.status_code == 403 and response.json()["code"] == "service_account_self_service"


class ServiceAccountPageTests:
    def test_an_admin_creates_one_issues_a_token_shown_once_and_revokes_it(self, dave, registry):
        browser = CsrfClient(dave)
        response = browser.post(LIST, {"username": "ci-deploy", "role": "lead", "description": "deploy job"}, page=LIST)
        robot = User.objects.get(username="ci-deploy")
        assert response.status_code == 302 and response["Location"] == f"{LIST}{robot.pk}/"
        assert robot.is_service_account and robot.role == "lead"

        issued = browser.post(f"{LIST}{robot.pk}/tokens/", {"name": "gha", "expires_on": ""}, page=LIST)
        assert issued.status_code == 200
        key = re.search(r'id="token-key" value="([^"]+)"', issued.content.decode()).group(1)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert api.get("/api/v1/models/").status_code == 200
        detail = browser.get(f"{LIST}{robot.pk}/").content.decode()
        assert key not in detail and "gha" in detail and f"{key[:8]}…" in detail

        token = ApiToken.objects.get(user=robot)
        revoked = browser.post(f"{LIST}{robot.pk}/tokens/{token.pk}/revoke/", page=LIST)
        assert revoked.status_code == 302 and api.get("/api/v1/models/").status_code == 401

    def test_an_admin_changes_the_role_and_the_audit_keeps_before_and_after(self, dave):
        robot = _robot(dave, role="viewer")
        response = CsrfClient(dave).post(
            f"{LIST}{robot.pk}/edit/", {"role": "lead", "description": "GitHub Actions", "is_active": "on"}, page=LIST
        )
        assert response.status_code == 302
        robot.refresh_from_db()
        assert robot.role == "lead"
        event = AuditEvent.objects.get(action="service_account.update")
        assert event.data["before"] == {"role": "viewer"} and event.data["after"] == {"role": "lead"}
        assert event.source == "ui" and event.via == "session" and event.ip == "127.0.0.1"

    def test_switching_it_off_stops_its_tokens(self, dave):
        robot = _robot(dave)
        client = token_client(robot)
        CsrfClient(dave).post(f"{LIST}{robot.pk}/edit/", {"role": "lead", "description": ""}, page=LIST)
        assert client.get("/api/v1/tokens/").status_code == 401

    @pytest.mark.parametrize("persona", ["alice", "bob", "carol"])
    def test_non_admins_get_a_clear_403(self, persona, request, dave):
        robot = _robot(dave)
        user = request.getfixturevalue(persona)
        browser = CsrfClient(user)
        for url in (LIST, f"{LIST}{robot.pk}/"):
            response = browser.get(url)
            assert (
                response.status_code == 403 and "Only admins may manage service accounts" in response.content.decode()
            )
        response = browser.post(LIST, {"username": "x", "role": "admin"})
        assert response.status_code == 403 and not User.objects.filter(username="x").exists()
        response = browser.post(f"{LIST}{robot.pk}/tokens/", {"name": "steal"})
        assert response.status_code == 403 and not ApiToken.objects.exists()

    def test_a_people_account_is_not_a_service_account_page(self, dave, carol):
        assert CsrfClient(dave).get(f"{LIST}{carol.pk}/").status_code == 404

    def test_the_list_shows_role_and_active_tokens(self, dave):
        robot = _robot(dave)
        api_token_create(user=robot, name="a")
        api_token_create(user=robot, name="b", actor=dave)
        html = CsrfClient(dave).get(LIST).content.decode()
        assert "ci-github" in html and "ML lead" in html and '<td class="num">2</td>' in html


class ServiceAccountApiTests:
    def test_an_admin_does_it_all_over_the_api(self, dave):
        client = token_client(dave)
        created = client.post("/api/v1/service-accounts/", {"username": "ci-api", "role": "reviewer"}, format="json")
        assert created.status_code == 201, created.json()
        account = created.json()
        assert account["role"] == "reviewer" and account["active_tokens"] == 0 and created["Location"] == account["url"]
        pk = account["id"]
        issued = client.post(f"/api/v1/service-accounts/{pk}/tokens/", {"name": "pipeline"}, format="json")
        assert issued.status_code == 201
        key, token_id = issued.json()["key"], issued.json()["id"]
        assert issued.json()["owner"] == "ci-api"
        listed = client.get(f"/api/v1/service-accounts/{pk}/tokens/").json()
        assert listed["count"] == 1 and "key" not in listed["results"][0] and key not in str(listed)
        robot = APIClient()
        robot.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert robot.get("/api/v1/tokens/").status_code == 200
        patched = client.patch(f"/api/v1/service-accounts/{pk}/", {"role": "viewer"}, format="json")
        assert patched.status_code == 200 and patched.json()["role"] == "viewer"
        assert client.delete(f"/api/v1/service-accounts/{pk}/tokens/{token_id}/").status_code == 204
        assert robot.get("/api/v1/tokens/").status_code == 401
        update = AuditEvent.objects.get(action="service_account.update")
        assert update.source == "api" and update.via == "token" and update.credential.startswith("tests (")
        assert update.data["before"] == {"role": "reviewer"} and update.data["after"] == {"role": "viewer"}

    def test_revoke_by_post_and_wrong_account_is_404(self, dave):
        robot = _robot(dave)
        other = _robot(dave, name="ci-other")
        token = api_token_create(user=robot, name="x", actor=dave).token
        client = token_client(dave)
        assert client.post(f"/api/v1/service-accounts/{other.pk}/tokens/{token.pk}/revoke/").status_code == 404
        response = client.post(f"/api/v1/service-accounts/{robot.pk}/tokens/{token.pk}/revoke/")
        assert response.status_code == 200 and response.json()["active"] is False

    @pytest.mark.parametrize("persona", ["alice", "bob", "carol"])
    def test_non_admins_get_403_admin_required(self, persona, request, dave):
        robot = _robot(dave)
        client = token_client(request.getfixturevalue(persona))
        calls = [
            client.get("/api/v1/service-accounts/"),
            client.post("/api/v1/service-accounts/", {"username": "x", "role": "admin"}, format="json"),
            client.get(f"/api/v1/service-accounts/{robot.pk}/"),
            client.patch(f"/api/v1/service-accounts/{robot.pk}/", {"role": "admin"}, format="json"),
            client.get(f"/api/v1/service-accounts/{robot.pk}/tokens/"),
            client.post(f"/api/v1/service-accounts/{robot.pk}/tokens/", {"name": "steal"}, format="json"),
        ]
        for response in calls:
            assert response.status_code == 403, response.json()
            assert response.json()["code"] == "admin_required" and "Only admins" in response.json()["detail"]
        robot.refresh_from_db()
        assert robot.role == "lead" and not ApiToken.objects.filter(user=robot).exists()

    def test_a_bad_role_is_a_named_field_error(self, dave):
        response = token_client(dave).post("/api/v1/service-accounts/", {"username": "x", "role": "god"}, format="json")
        assert response.status_code == 400 and "role" in response.json()["errors"]
