"""Walks every URL pattern and proves that nothing is served to an anonymous visitor."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

# The only URLs an anonymous visitor may open: the login forms, the two steps of SSO, and the liveness probe.
PUBLIC = {"accounts:login", "accounts:oidc_login", "accounts:oidc_callback", "admin:login", "healthz", "readyz"}
SAMPLE_VALUES = ("1", "x", "accounts")


def _walk(patterns, namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", list(pattern.pattern.regex.groupindex)


def _url(name: str, groups: list[str]) -> str | None:
    for value in SAMPLE_VALUES:
        try:
            return reverse(name, kwargs={group: value for group in groups})
        except NoReverseMatch:
            continue
    return None


ALL_URLS = sorted({(name, _url(name, groups)) for name, groups in _walk(get_resolver().url_patterns)} - {(None, None)})


def test_the_walk_finds_the_pages_and_endpoints_we_know_of():
    names = {name for name, _ in ALL_URLS}
    assert {"registry:model_list", "registry-api:model_list", "api-schema", "status", "admin:index"} <= names
    assert len(ALL_URLS) > 40


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "url"), [u for u in ALL_URLS if u[0] not in PUBLIC], ids=lambda v: str(v))
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_visitors_are_sent_to_log_in(client, name, url, method):
    assert url, f"could not build a URL for {name}"
    response = getattr(client, method)(url)
    if url.startswith("/api/"):
        assert response.status_code in (401, 405 if method == "post" else 401), (name, response.status_code)
        if response.status_code == 401:
            assert b"not_authenticated" in response.content
    else:
        assert response.status_code == 302, (name, url, response.status_code)
        assert "/login/" in response["Location"], (name, response["Location"])


@pytest.mark.django_db
def test_the_public_urls_reveal_nothing(client):
    assert client.get(reverse("healthz")).content == b"ok"
    assert b"Log in" in client.get(reverse("accounts:login")).content
