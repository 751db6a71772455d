"""Security headers on every kind of response, CSRF on forms and session-authenticated API calls, and no
inline script anywhere the Content-Security-Policy would have to allow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.test import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _csp(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_secure_headers(response) -> None:
    csp = _csp(response)
    assert csp.get("script-src") == ["'self'"], response.headers.get("Content-Security-Policy")
    assert csp.get("default-src") == ["'self'"]
    assert csp.get("object-src") == ["'none'"] and csp.get("frame-ancestors") == ["'none'"]
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "same-origin"
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("Cross-Origin-Opener-Policy") == "same-origin"


def _static_url() -> str:
    return staticfiles_storage.url("common/app.css")


class SecurityHeaderTests:
    @pytest.mark.parametrize(
        ("what", "path", "status"),
        [
            ("login page", "/accounts/login/", 200),
            ("liveness probe", "/healthz", 200),
            ("page for anonymous", "/deployments/", 302),
            ("404 page", "/no/such/page/", 404),
            ("API without credentials", "/api/v1/environments/", 401),
            ("API 404", "/api/v1/no-such-endpoint/", 404),
        ],
    )
    def test_anonymous_responses_carry_them(self, client, what, path, status):
        response = client.get(path)
        assert response.status_code == status, what
        assert_secure_headers(response)

    def test_a_static_file_carries_them(self, client):
        response = client.get(_static_url())
        assert response.status_code == 200 and "css" in response.headers["Content-Type"]
        assert_secure_headers(response)

    def test_a_signed_in_page_and_the_api_docs_carry_them(self, carol_client):
        for path in ("/deployments/", "/docs/api/"):
            response = carol_client.get(path)
            assert response.status_code == 200, path
            assert_secure_headers(response)

    def test_an_api_json_answer_carries_them(self, api_client):
        response = api_client.get("/api/v1/environments/")
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        assert_secure_headers(response)

    def test_hsts_is_sent_over_https_when_configured(self, client, settings):
        settings.SECURE_HSTS_SECONDS = 31536000
        response = client.get("/healthz", secure=True)
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"

    def test_the_ingress_forwarded_proto_makes_a_request_secure(self, client, settings):
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        settings.SECURE_SSL_REDIRECT = True
        assert client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
        redirected = client.get("/accounts/login/")
        assert redirected.status_code == 301 and redirected["Location"].startswith("https://")
        assert client.get("/healthz").status_code == 200, "the kubelet's plain-HTTP probe is never redirected"


class CsrfTests:
    def test_a_session_authenticated_api_post_without_the_token_is_refused(self, dave):
        client = Client(enforce_csrf_checks=True)
        client.force_login(dave)
        response = client.post("/api/v1/deployments/", {"model": "x"}, content_type="application/json")
        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]

    def test_the_same_post_with_the_token_gets_past_csrf(self, dave):
        client = Client(enforce_csrf_checks=True)
        client.force_login(dave)
        client.get("/deployments/")
        token = client.cookies["csrftoken"].value
        response = client.post(
            "/api/v1/deployments/", {"model": "x"}, content_type="application/json", headers={"X-CSRFToken": token}
        )
        assert response.status_code != 403, response.content
        assert response.status_code == 400  # validation, not CSRF

    def test_a_form_post_without_the_token_is_refused(self, carol):
        client = Client(enforce_csrf_checks=True)
        client.force_login(carol)
        assert client.post("/accounts/logout/").status_code == 403
        assert client.post("/accounts/login/", {"username": "carol", "password": "x"}).status_code == 403

    def test_every_post_form_in_the_templates_has_a_csrf_token(self):
        for template in (REPO_ROOT / "apps").rglob("templates/**/*.html"):
            text = template.read_text()
            for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.S | re.I):
                if re.search(r'method="post"', form, flags=re.I):
                    assert "{% csrf_token %}" in form, f"{template}: a POST form without {{% csrf_token %}}"


class NoInlineScriptTests:
    INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
    SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)

    def test_templates_have_no_inline_scripts_or_event_handler_attributes(self):
        templates = list((REPO_ROOT / "apps").rglob("templates/**/*.html"))
        assert len(templates) > 10
        for template in templates:
            text = template.read_text()
            assert not self.INLINE_HANDLER.search(text), f"{template}: an on* handler attribute"
            assert "javascript:" not in text.lower(), template
            for attributes, body in self.SCRIPT.findall(text):
                data_block = 'type="application/json"' in attributes
                assert data_block or ("src=" in attributes and not body.strip()), f"{template}: inline <script>"

    def test_the_api_docs_page_loads_its_script_from_a_url(self, carol_client):
        page = carol_client.get("/docs/api/").content.decode()
        for attributes, body in self.SCRIPT.findall(page):
            assert "src=" in attributes and not body.strip(), f"inline script on the API docs page: {body[:200]}"

    def test_every_script_a_page_references_exists(self, carol_client):
        page = carol_client.get("/docs/api/").content.decode()
        sources = re.findall(r'<script[^>]+src="([^"]+)"', page)
        assert sources
        for src in sources:
            path = src.split("?")[0]
            if path.startswith(django_settings.STATIC_URL) or path.startswith("/" + django_settings.STATIC_URL):
                name = path.split(django_settings.STATIC_URL.strip("/") + "/", 1)[1]
                assert finders.find(re.sub(r"\.[0-9a-f]{12}\.", ".", name)), src
            else:
                assert carol_client.get(src).status_code == 200, src
