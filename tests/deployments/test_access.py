"""Managing access: grants per environment and global roles, through the Access page and the API."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import AuditEvent, User
from apps.accounts.permissions import DEPLOY, environments_where, has_role
from apps.accounts.services import api_token_create
from apps.deployments.access import sso_grants_sync
from apps.deployments.models import EnvironmentGrant


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


def test_a_grant_adds_to_the_global_role_only_in_its_environment(carol, environments):
    EnvironmentGrant.objects.create(user=carol, environment=environments["dev"], role=Role.LEAD)
    assert has_role(carol, Role.LEAD, environment=environments["dev"])
    assert not has_role(carol, Role.LEAD, environment=environments["staging"])
    assert not has_role(carol, Role.LEAD)
    assert list(environments_where(carol, DEPLOY)) == [environments["dev"]]
    carol.is_active = False
    assert not has_role(carol, Role.LEAD, environment=environments["dev"])


def test_an_admin_grant_in_one_environment_is_every_role_there(carol, environments):
    EnvironmentGrant.objects.create(user=carol, environment=environments["staging"], role=Role.ADMIN)
    assert has_role(carol, Role.REVIEWER, environment=environments["staging"])
    assert not has_role(carol, Role.REVIEWER, environment=environments["production"])


class TestAccessPage:
    def test_admins_grant_and_revoke_and_it_is_audited(self, client, dave, carol, environments):
        client.force_login(dave)
        page = client.get(reverse("deployments:access"))
        assert page.status_code == 200 and b'data-user="carol"' in page.content
        response = client.post(
            reverse("deployments:access_grant_add"), {"user": "carol", "environment": "dev", "role": "lead"}
        )
        assert response.status_code == 302
        grant = EnvironmentGrant.objects.get(user=carol)
        assert (grant.environment.name, grant.role, grant.granted_by) == ("dev", "lead", dave)
        assert b"ML lead in dev" in client.get(reverse("deployments:access")).content
        client.post(reverse("deployments:access_grant_remove", args=[grant.pk]))
        assert not EnvironmentGrant.objects.exists()
        actions = list(AuditEvent.objects.filter(action__startswith="access.").values_list("action", flat=True))
        assert sorted(actions) == ["access.grant", "access.revoke"]

    def test_others_cannot_see_or_change_access(self, client, alice, carol, environments):
        client.force_login(alice)
        assert client.get(reverse("deployments:access")).status_code == 403
        response = client.post(
            reverse("deployments:access_grant_add"), {"user": "alice", "environment": "dev", "role": "admin"}
        )
        refused = [m for m in get_messages(response.wsgi_request) if "status-403" in m.extra_tags]
        assert refused and not EnvironmentGrant.objects.exists()
        client.post(reverse("deployments:access_role_set", args=["carol"]), {"role": "admin"})
        carol.refresh_from_db()
        assert carol.role == Role.VIEWER

    def test_the_global_role_changes_with_before_and_after_in_the_audit(self, client, dave, carol):
        client.force_login(dave)
        client.post(reverse("deployments:access_role_set", args=["carol"]), {"role": "reviewer"})
        carol.refresh_from_db()
        assert carol.role == Role.REVIEWER
        event = AuditEvent.objects.get(action="access.role_set")
        assert event.data["before"] == {"role": "viewer"} and event.data["after"] == {"role": "reviewer"}

    def test_the_last_admin_cannot_be_demoted(self, client, dave):
        client.force_login(dave)
        response = client.post(reverse("deployments:access_role_set", args=["dave"]), {"role": "viewer"})
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        dave.refresh_from_db()
        assert dave.role == Role.ADMIN and any("last admin" in m for m in messages)

    def test_bad_input_is_named(self, client, dave, environments):
        client.force_login(dave)
        response = client.post(
            reverse("deployments:access_grant_add"), {"user": "nobody", "environment": "dev", "role": "lead"}
        )
        messages = [str(m) for m in get_messages(response.wsgi_request)]
        assert any("user" in m for m in messages) and not EnvironmentGrant.objects.exists()


class TestAccessApi:
    def test_admin_grants_lists_filters_and_revokes(self, dave, carol, alice, environments):
        api = token_client(dave)
        created = api.post("/api/v1/grants/", {"user": "carol", "environment": "dev", "role": "lead"}, format="json")
        assert created.status_code == 201 and created.json()["role"] == "lead"
        again = api.post("/api/v1/grants/", {"user": "carol", "environment": "dev", "role": "lead"}, format="json")
        assert again.json()["id"] == created.json()["id"] and EnvironmentGrant.objects.count() == 1
        api.post("/api/v1/grants/", {"user": "alice", "environment": "staging", "role": "reviewer"}, format="json")
        listed = api.get("/api/v1/grants/", {"environment": "dev"}).json()
        assert listed["count"] == 1 and listed["results"][0]["user"] == "carol"
        assert api.delete(f"/api/v1/grants/{created.json()['id']}/").status_code == 204
        assert api.delete(f"/api/v1/grants/{created.json()['id']}/").status_code == 404

    def test_non_admins_read_only_their_own_grants(self, carol, alice, environments):
        EnvironmentGrant.objects.create(user=alice, environment=environments["dev"], role=Role.LEAD)
        EnvironmentGrant.objects.create(user=carol, environment=environments["dev"], role=Role.REVIEWER)
        api = token_client(carol)
        listed = api.get("/api/v1/grants/").json()
        assert [g["user"] for g in listed["results"]] == ["carol"]
        refused = api.post("/api/v1/grants/", {"user": "carol", "environment": "dev", "role": "admin"}, format="json")
        assert refused.status_code == 403 and refused.json()["code"] == "admin_required"
        assert api.get("/api/v1/users/").status_code == 403
        assert api.get("/api/v1/users/alice/").status_code == 403
        assert api.get("/api/v1/users/carol/").json()["grants"][0]["role"] == "reviewer"

    def test_unknown_names_are_400_naming_them(self, dave, environments):
        api = token_client(dave)
        bad_env = api.post("/api/v1/grants/", {"user": "dave", "environment": "mars", "role": "lead"}, format="json")
        assert bad_env.status_code == 400 and "mars" in bad_env.json()["detail"]
        bad_role = api.post("/api/v1/grants/", {"user": "dave", "environment": "dev", "role": "king"}, format="json")
        assert bad_role.status_code == 400 and "role" in bad_role.json()["errors"]
        bad_user = api.post("/api/v1/grants/", {"user": "ghost", "environment": "dev", "role": "lead"}, format="json")
        assert bad_user.status_code == 400 and "ghost" in bad_user.json()["detail"]

    def test_role_change_honours_if_match(self, dave, carol):
        api = token_client(dave)
        first = api.get("/api/v1/users/carol/")
        etag = first.headers["ETag"]
        changed = api.patch("/api/v1/users/carol/", {"role": "lead"}, format="json", HTTP_IF_MATCH=etag)
        assert changed.status_code == 200 and changed.json()["role"] == "lead"
        stale = api.patch("/api/v1/users/carol/", {"role": "reviewer"}, format="json", HTTP_IF_MATCH=etag)
        assert stale.status_code == 412
        carol.refresh_from_db()
        assert carol.role == Role.LEAD


@pytest.mark.django_db
def test_sso_sync_replaces_only_sso_grants(carol, dave, environments):
    EnvironmentGrant.objects.create(user=carol, environment=environments["dev"], role=Role.LEAD, granted_by=dave)
    skipped = sso_grants_sync(user=carol, grants=[("production", "reviewer"), ("mars", "lead"), ("dev", "king")])
    assert skipped == ["lead@mars", "king@dev"]
    held = set(carol.environment_grants.values_list("environment__name", "role", "source"))
    assert held == {("dev", "lead", "manual"), ("production", "reviewer", "sso")}
    sso_grants_sync(user=carol, grants=[("staging", "lead")])
    held = set(carol.environment_grants.values_list("environment__name", "role", "source"))
    assert held == {("dev", "lead", "manual"), ("staging", "lead", "sso")}
