"""Issue 17 item 5: a version number too large for any registry (9999999999999999999999999) is not found (404,
naming the limit), not a registry outage (503), on the API and on the page, for a SQLite and an HTTP registry."""

from __future__ import annotations

import pytest

from apps.registry.versions import MAX_VERSION

pytestmark = pytest.mark.django_db

HUGE = "9999999999999999999999999"


@pytest.mark.parametrize("version", [HUGE, str(MAX_VERSION + 1)])
def test_the_api_answers_404_naming_the_limit(api_client, any_registry, version):
    response = api_client.get(f"/api/v1/models/credit-default/versions/{version}/")
    assert response.status_code == 404, response.content[:300]
    assert response.json()["code"] == "not_found"
    assert f"at most {MAX_VERSION}" in response.json()["detail"]


def test_the_version_page_answers_404_naming_the_limit(carol_client, any_registry):
    response = carol_client.get(f"/models/credit-default/versions/{HUGE}/")
    assert response.status_code == 404
    assert f"at most {MAX_VERSION}" in response.content.decode()


def test_a_version_at_the_limit_is_looked_up_and_simply_not_found(api_client, any_registry):
    response = api_client.get(f"/api/v1/models/credit-default/versions/{MAX_VERSION}/")
    assert response.status_code == 404 and "at most" not in response.json()["detail"]


def test_a_deploy_of_a_huge_version_is_a_400_naming_the_field(alice, any_registry):
    from rest_framework.test import APIClient

    from apps.accounts.services import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice, name='t').key}")
    response = client.post(
        "/api/v1/deployments/", {"model": "credit-default", "version": HUGE, "environment": "dev"}, format="json"
    )
    assert response.status_code == 400 and "version" in response.json()["errors"]
