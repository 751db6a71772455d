"""Sign-in through OpenID Connect against a real provider on 127.0.0.1 (tests/emulators/oidc.py).

The browser's side of the redirects is played by the Django test client (our pages) and ``requests`` (the
provider's pages); the control plane itself talks to the provider over HTTP, as it would to Entra ID.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from apps.accounts.choices import Role
from apps.accounts.models import AuditEvent, User
from apps.accounts.oidc import roles_from_groups
from apps.accounts.permissions import has_role
from apps.deployments.models import EnvironmentGrant
from tests.conftest import PASSWORD
from tests.emulators.oidc import Identity, OidcProvider

pytestmark = pytest.mark.django_db

LEADS = "6f1c9a1e-0000-4000-8000-00000000lead"
REVIEWERS_PROD = "6f1c9a1e-0000-4000-8000-0000reviewer"
ADMINS = "6f1c9a1e-0000-4000-8000-000000admins"


@pytest.fixture(scope="module")
def provider():
    with OidcProvider() as running:
        yield running


@pytest.fixture
def sso(settings, provider):
    provider.tamper = None
    provider.next_identity = Identity(
        sub="sub-ana", preferred_username="ana@contoso.com", email="ana@contoso.com", groups=[LEADS, REVIEWERS_PROD]
    )
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_CLIENT_ID = provider.client_id
    settings.OIDC_CLIENT_SECRET = provider.client_secret
    settings.OIDC_GROUP_ROLES = [f"{LEADS}=lead", f"{REVIEWERS_PROD}=reviewer@production", f"{ADMINS}=admin"]
    settings.OIDC_DEFAULT_ROLE = "viewer"
    return provider


def sign_in(client, provider: OidcProvider, next_url: str = "/deployments/"):
    """Click "Sign in with Microsoft", let the provider send the browser back, return the callback's answer."""
    start = client.get(f"/accounts/login/sso/?next={next_url}")
    assert start.status_code == 302, start.content[:500]
    authorize = start["Location"]
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["response_type"] == ["code"] and query["client_id"] == [provider.client_id]
    assert query["state"][0] and query["nonce"][0], "state and nonce must be sent"
    back = requests.get(authorize, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/accounts/login/sso/callback/"
    return client.get(f"{callback.path}?{callback.query}")


class OidcLoginTests:
    def test_the_login_page_offers_both_ways_when_sso_is_configured(self, client, sso):
        page = client.get("/accounts/login/").content.decode()
        assert "Sign in with Microsoft" in page
        assert 'name="password"' in page

    def test_the_login_page_has_no_sso_button_when_unconfigured(self, client, settings):
        settings.OIDC_ISSUER = ""
        page = client.get("/accounts/login/").content.decode()
        assert "Sign in with" not in page and 'name="password"' in page
        assert client.get("/accounts/login/sso/").status_code == 404

    def test_a_first_login_creates_the_user_with_roles_and_grants_from_groups(self, client, sso, environments):
        response = sign_in(client, sso)
        assert response.status_code == 302 and response["Location"] == "/deployments/"
        user = User.objects.get(username="ana@contoso.com")
        assert user.role == Role.LEAD and user.email == "ana@contoso.com"
        assert not user.has_usable_password()
        grants = set(EnvironmentGrant.objects.filter(user=user).values_list("environment__name", "role", "source"))
        assert grants == {("production", Role.REVIEWER, EnvironmentGrant.Source.SSO)}
        assert has_role(user, Role.REVIEWER, environment=environments["production"])
        assert not has_role(user, Role.REVIEWER, environment=environments["dev"])
        # Signed in: the session is the user's.
        assert client.get("/deployments/").wsgi_request.user == user
        # The provider was used as a relying party must: code exchanged with the secret, keys fetched.
        assert sso.token_clients[-1] == (sso.client_id, sso.client_secret)
        assert "GET /jwks" in sso.requests
        assert AuditEvent.objects.filter(action="user.sso_create", target_id=str(user.pk)).exists()

    def test_group_changes_apply_at_the_next_login(self, client, sso, environments):
        sign_in(client, sso)
        client.logout()
        sso.next_identity.groups = [ADMINS]
        sign_in(client, sso)
        user = User.objects.get(username="ana@contoso.com")
        assert user.role == Role.ADMIN and user.is_staff
        assert not EnvironmentGrant.objects.filter(user=user).exists(), "the SSO grant left with the group"
        client.logout()
        sso.next_identity.groups = []
        sign_in(client, sso)
        user.refresh_from_db()
        assert user.role == Role.VIEWER and not user.is_staff
        assert AuditEvent.objects.filter(action="user.sso_role_set", target_id=str(user.pk)).count() == 2

    def test_grants_set_by_an_admin_survive_a_login(self, client, sso, environments, dave):
        sign_in(client, sso)
        user = User.objects.get(username="ana@contoso.com")
        EnvironmentGrant.objects.create(user=user, environment=environments["dev"], role=Role.LEAD, granted_by=dave)
        client.logout()
        sso.next_identity.groups = []
        sign_in(client, sso)
        assert set(EnvironmentGrant.objects.filter(user=user).values_list("environment__name", "role")) == {
            ("dev", Role.LEAD)
        }

    def test_without_a_default_role_someone_in_no_mapped_group_is_refused(self, client, sso, settings):
        settings.OIDC_DEFAULT_ROLE = ""
        sso.next_identity.groups = ["some-unrelated-group"]
        response = sign_in(client, sso)
        assert response.status_code == 403
        assert "in no group that gives access" in response.content.decode()
        assert not User.objects.filter(username="ana@contoso.com").exists()

    def test_a_local_account_of_the_same_name_is_not_taken_over(self, client, sso):
        User.objects.create_user(username="ana@contoso.com", password=PASSWORD, role=Role.VIEWER)
        response = sign_in(client, sso)
        assert response.status_code == 403
        assert "is a local account here" in response.content.decode()
        assert "_auth_user_id" not in client.session

    @pytest.mark.parametrize(
        ("tamper", "reason"),
        [
            ("signature", "signature could not be verified"),
            ("audience", "audience is not the expected one"),
            ("issuer", "issuer is not the expected one"),
            ("nonce", "nonce is not the expected one"),
            ("expired", "has expired"),
        ],
    )
    def test_a_bad_id_token_is_refused_with_a_clear_page(self, client, sso, tamper, reason):
        sso.tamper = tamper
        response = sign_in(client, sso)
        page = response.content.decode()
        assert response.status_code == 403
        assert "Sign-in with Microsoft failed" in page and reason in page, page
        assert "_auth_user_id" not in client.session
        assert not User.objects.filter(username="ana@contoso.com").exists()
        assert AuditEvent.objects.filter(action="login.sso_refused").exists()

    def test_a_callback_with_a_forged_state_is_refused(self, client, sso):
        client.get("/accounts/login/sso/")
        response = client.get("/accounts/login/sso/callback/?code=anything&state=forged")
        assert response.status_code == 403
        assert "sign-in request expired" in response.content.decode()
        assert not sso.token_requests or sso.token_requests[-1].get("code") != "anything"

    def test_an_error_from_the_provider_is_shown(self, client, sso):
        client.get("/accounts/login/sso/")
        response = client.get("/accounts/login/sso/callback/?error=access_denied&error_description=User+cancelled")
        assert response.status_code == 403
        assert "User cancelled" in response.content.decode()

    def test_next_never_leaves_the_site(self, client, sso):
        response = sign_in(client, sso, next_url="https://evil.example.com/")
        assert response.status_code == 302 and response["Location"] == "/models/"


class LocalLoginTests:
    def test_a_local_account_still_signs_in_with_sso_configured(self, client, sso, carol):
        response = client.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(carol.pk)

    def test_local_login_can_be_turned_off(self, client, sso, settings, carol):
        settings.LOCAL_LOGIN_ENABLED = False
        page = client.get("/accounts/login/").content.decode()
        assert "Sign in with Microsoft" in page and 'name="password"' not in page
        response = client.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
        assert response.status_code == 403
        assert "_auth_user_id" not in client.session
        # Nor through the admin's login form.
        client.post("/admin/login/", {"username": "carol", "password": PASSWORD})
        assert "_auth_user_id" not in client.session


class GroupRoleMappingTests:
    def test_the_highest_global_role_wins_and_environment_grants_are_kept_apart(self):
        entries = ["g1=lead", "g2=reviewer", "g3=admin@production", "g3=lead@dev"]
        mapped = roles_from_groups(["g1", "g2", "g3", "unknown"], entries)
        assert mapped.role == Role.REVIEWER
        assert mapped.grants == {("production", Role.ADMIN), ("dev", Role.LEAD)}
        assert roles_from_groups(["unknown"], entries).role is None

    def test_a_malformed_entry_fails_loudly(self):
        with pytest.raises(ImproperlyConfigured, match="OIDC_GROUP_ROLES"):
            roles_from_groups(["g"], ["g=superuser"])
