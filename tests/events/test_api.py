"""/api/v1/channels/ and /api/v1/deliveries/: roles, write-only secrets, audit, errors, Idempotency-Key."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.choices import Role
from apps.accounts.models import AuditEvent, User
from apps.accounts.services import api_token_create
from apps.deployments.models import EnvironmentGrant
from apps.events import catalogue, services
from apps.events.models import Channel, Delivery
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SECRET = "0123456789abcdef-secret"


def _api(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


@pytest.fixture
def admin_api(dave) -> APIClient:
    return _api(dave)


@pytest.fixture
def erin(environments) -> User:
    """A viewer who is admin of dev only (a grant)."""
    user = User.objects.create_user(username="erin", password=PASSWORD, role=Role.VIEWER)
    EnvironmentGrant.objects.create(user=user, environment=environments["dev"], role=Role.ADMIN)
    return user


def _webhook(**extra) -> dict:
    return {
        "name": "ci",
        "kind": "webhook",
        "environment": "dev",
        "url": "https://ci.example.com/hooks/modelplane?token=TOPSECRET",
        "secret": SECRET,
        "events": [catalogue.REVISION_LIVE, catalogue.PROMOTION_EXECUTED],
        **extra,
    }


class ChannelApiTests:
    def test_an_admin_adds_a_channel_whose_url_and_secret_are_never_shown(self, admin_api, environments):
        response = admin_api.post("/api/v1/channels/", _webhook(), format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["url_display"] == "https://ci.example.com/…" and body["has_secret"] is True
        assert "url" not in body and "secret" not in body
        assert body["events"] == [catalogue.REVISION_LIVE, catalogue.PROMOTION_EXECUTED]
        listed = admin_api.get("/api/v1/channels/").content + admin_api.get(f"/api/v1/channels/{body['id']}/").content
        assert b"TOPSECRET" not in listed and SECRET.encode() not in listed
        audit = AuditEvent.objects.get(action="channel.create")
        assert (audit.source, audit.actor_name) == ("api", "dave")
        assert "TOPSECRET" not in str(audit.data) and SECRET not in str(audit.data)

    def test_viewers_manage_no_channels(self, api_client, environments):
        response = api_client.get("/api/v1/channels/")
        assert response.status_code == 403 and response.json()["code"] == "channels_forbidden"
        assert api_client.post("/api/v1/channels/", _webhook(), format="json").status_code == 403
        assert not Channel.objects.exists()

    def test_an_environment_admin_manages_that_environments_channels_only(self, erin, environments):
        api = _api(erin)
        assert api.post("/api/v1/channels/", _webhook(), format="json").status_code == 201
        response = api.post("/api/v1/channels/", _webhook(environment=None), format="json")
        assert response.status_code == 403
        assert response.json()["detail"].startswith("Only admins may manage global notification channels")
        assert api.post("/api/v1/channels/", _webhook(environment="staging"), format="json").status_code == 403
        Channel.objects.create(name="global", kind="slack", url="https://hooks.example.test/x", events=["alert.fired"])
        assert [c["name"] for c in api.get("/api/v1/channels/").json()["results"]] == ["ci"]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"events": ["alert.firing"]}, "events"),
            ({"secret": ""}, "secret"),
            ({"kind": "slack"}, "secret"),  # Slack URLs carry their own credential: no secret
            ({"url": "http://ci.example.com/hook"}, "url"),
            ({"url": "https://10.1.2.3/hook"}, "url"),
            ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
            ({"url": "https://localhost/hook"}, "url"),
            ({"url": "https://user:pw@ci.example.com/hook"}, "url"),
            ({"kind": "email", "url": ""}, "recipients"),
        ],
    )
    def test_invalid_channels_are_refused_naming_the_field(self, admin_api, environments, settings, change, field):
        settings.EVENTS_ALLOW_PRIVATE_URLS = False  # as deployed
        response = admin_api.post("/api/v1/channels/", _webhook(**change), format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["errors"], response.json()
        assert not Channel.objects.exists()

    def test_patch_changes_what_it_names_and_the_audit_hides_the_new_url(self, admin_api, environments):
        pk = admin_api.post("/api/v1/channels/", _webhook(), format="json").json()["id"]
        response = admin_api.patch(
            f"/api/v1/channels/{pk}/",
            {"enabled": False, "url": "https://ci.example.com/new?token=NEWSECRET"},
            format="json",
        )
        assert response.status_code == 200 and response.json()["enabled"] is False
        assert Channel.objects.get(pk=pk).url.endswith("NEWSECRET")
        audit = AuditEvent.objects.get(action="channel.update")
        assert sorted(audit.data["changed"]) == ["enabled", "url"] and "NEWSECRET" not in str(audit.data)
        assert admin_api.delete(f"/api/v1/channels/{pk}/").status_code == 204
        assert admin_api.get(f"/api/v1/channels/{pk}/").status_code == 404


class DeliveryApiTests:
    @pytest.fixture
    def delivery(self, dave, environments, django_capture_on_commit_callbacks, monkeypatch) -> Delivery:
        monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)
        services.channel_create(actor=dave, **{**_webhook(), "events": [catalogue.REVISION_LIVE]})
        with django_capture_on_commit_callbacks(execute=True):
            services.publish(catalogue.REVISION_LIVE, {"summary": "r1 is live"}, environment=environments["dev"])
        return Delivery.objects.get()

    def test_deliveries_are_listed_filtered_and_shown_with_their_attempts(self, admin_api, delivery):
        body = admin_api.get("/api/v1/deliveries/?status=pending").json()
        assert [(d["id"], d["event"], d["summary"]) for d in body["results"]] == [
            (delivery.pk, "deployment.revision_live", "r1 is live")
        ]
        assert admin_api.get("/api/v1/deliveries/?status=failed").json()["count"] == 0
        detail = admin_api.get(f"/api/v1/deliveries/{delivery.pk}/").json()
        assert detail["attempts"] == [] and detail["payload"] == {"summary": "r1 is live"}

    def test_resend_makes_a_new_delivery_once_per_idempotency_key(self, admin_api, delivery, monkeypatch):
        monkeypatch.setattr("apps.events.tasks.deliver.apply_async", lambda **_: None)
        first = admin_api.post(f"/api/v1/deliveries/{delivery.pk}/resend/", HTTP_IDEMPOTENCY_KEY="resend-1")
        assert first.status_code == 202, first.content
        assert first.json()["resend_of"] == delivery.pk and first.json()["status"] == "pending"
        again = admin_api.post(f"/api/v1/deliveries/{delivery.pk}/resend/", HTTP_IDEMPOTENCY_KEY="resend-1")
        assert again.json()["id"] == first.json()["id"]
        other = admin_api.post(f"/api/v1/deliveries/{first.json()['id']}/resend/", HTTP_IDEMPOTENCY_KEY="resend-1")
        assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
        assert Delivery.objects.count() == 2
        assert AuditEvent.objects.filter(action="delivery.resend", source="api").count() == 1

    def test_viewers_see_no_deliveries(self, api_client, delivery):
        assert api_client.get("/api/v1/deliveries/").status_code == 403
        assert api_client.post(f"/api/v1/deliveries/{delivery.pk}/resend/").status_code == 403
