"""Secrets are never rendered or logged: connection strings with passwords, the OIDC client secret, API
tokens, registry credentials. Log records are redacted as they are created (controlplane/logging_redaction.py),
so what pytest captures is what a log handler in production would write."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings as django_settings

from apps.accounts.services import api_token_create
from controlplane.logging_redaction import redact, secret_values

pytestmark = pytest.mark.django_db

REGISTRY_PASSWORD = "mlflow-registry-pass-9431"
BROKER_PASSWORD = "broker-pass-5521"


@pytest.fixture
def unreachable_registry_with_credentials(settings):
    """A tracking server URI with credentials in it, on a port nothing listens on."""
    uri = f"http://modelplane:{REGISTRY_PASSWORD}@127.0.0.1:9/"
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = uri
    settings.MLFLOW_HTTP_RETRIES = 0
    settings.MLFLOW_HTTP_TIMEOUT = 2
    return uri


class RedactionTests:
    def test_known_values_uri_credentials_and_tokens_are_masked(self):
        text = (
            "db postgres://app:db-pass-1234@db:5432/x key=abc client secret s3cr3t-value "
            "Authorization: Token AbCdEf_123456789-xyz Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl "
            "dapi0123456789abcdef0123456789abcdef ?code=0.AXYA-secretcode&state=1 password=hunter22"
        )
        cleaned = redact(text, values=["s3cr3t-value"])
        for secret in (
            "db-pass-1234",
            "s3cr3t-value",
            "AbCdEf_123456789-xyz",
            "eyJhbGciOi",
            "dapi0123",
            "AXYA",
            "hunter22",
        ):
            assert secret not in cleaned, secret
        assert "postgres://app:***@db:5432/x" in cleaned and "state=1" in cleaned
        assert redact("Token authentication failed for carol") == "Token authentication failed for carol"

    def test_the_secret_settings_are_collected(self, settings):
        settings.OIDC_CLIENT_SECRET = "entra-client-secret-value"
        settings.CELERY_BROKER_URL = f"rediss://:{BROKER_PASSWORD}@cache:6380/0"
        values = secret_values(settings, environ={"DATABRICKS_TOKEN": "dapi-env-token", "DJANGO_DEBUG": "false"})
        assert {"entra-client-secret-value", BROKER_PASSWORD, "dapi-env-token", settings.SECRET_KEY} <= set(values)
        assert "false" not in values

    def test_every_log_record_is_redacted_when_created(self, caplog):
        caplog.set_level(logging.DEBUG)
        logging.getLogger("apps.anything").warning("the key is %s", django_settings.SECRET_KEY)
        try:
            raise RuntimeError(f"cannot reach rediss://:{BROKER_PASSWORD}@cache:6380/0")
        except RuntimeError:
            logging.getLogger("celery.worker").exception("broker down")
        assert django_settings.SECRET_KEY not in caplog.text
        assert BROKER_PASSWORD not in caplog.text
        assert "rediss://:***@cache:6380/0" in caplog.text and "the key is ***" in caplog.text


class NothingLeaksTests:
    def test_a_token_authenticated_request_logs_no_key(self, carol, caplog, unreachable_registry_with_credentials):
        from rest_framework.test import APIClient

        caplog.set_level(logging.DEBUG)
        key = api_token_create(user=carol, name="notebook").key
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.get("/api/v1/models/")
        assert response.status_code == 503, response.content
        # Something was logged about it, and it names the registry, but never the key nor the password.
        assert "127.0.0.1:9" in caplog.text
        assert key not in caplog.text and key[:12] not in caplog.text
        assert REGISTRY_PASSWORD not in caplog.text
        assert REGISTRY_PASSWORD not in response.content.decode()
        logging.getLogger("apps.accounts").info("request headers: %s", {"Authorization": f"Token {key}"})
        assert key not in caplog.text

    def test_a_failing_registry_shows_no_password_on_pages(
        self, carol_client, caplog, unreachable_registry_with_credentials
    ):
        caplog.set_level(logging.DEBUG)
        for path in ("/status/", "/models/"):
            page = carol_client.get(path).content.decode()
            assert REGISTRY_PASSWORD not in page, path
        status = carol_client.get("/status/").content.decode()
        assert "modelplane:***@127.0.0.1:9" in status
        assert REGISTRY_PASSWORD not in caplog.text

    def test_the_status_page_masks_the_broker_and_database(self, carol_client, settings):
        settings.CELERY_BROKER_URL = f"redis://:{BROKER_PASSWORD}@127.0.0.1:6379/14"
        page = carol_client.get("/status/").content.decode()
        assert BROKER_PASSWORD not in page
        assert django_settings.DATABASES["default"].get("PASSWORD", "") in ("", None) or (
            django_settings.DATABASES["default"]["PASSWORD"] not in page
        )

    def test_no_page_renders_the_client_secret_or_the_secret_key(self, carol_client, settings):
        settings.OIDC_CLIENT_SECRET = "entra-client-secret-value"
        settings.OIDC_ISSUER, settings.OIDC_CLIENT_ID = "https://login.example.com/tenant/v2.0", "client-id"
        for path in ("/accounts/login/", "/status/", "/deployments/", "/docs/api/", "/api/schema/"):
            page = carol_client.get(path).content.decode()
            assert "entra-client-secret-value" not in page and settings.SECRET_KEY not in page, path
