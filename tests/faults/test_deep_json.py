"""Issue 17 item 2: deeply nested JSON (about 1,000 levels in a 2 KB body) to any write answers 400 JSON
naming the problem, for a viewer and a lead alike; never an HTML 500. A JSON form field too."""

from __future__ import annotations

import pytest
from django import forms
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.common.forms import JSONField
from apps.common.json_input import MAX_DEPTH

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000  # 2,000 bytes
JUST_TOO_DEEP = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)


def _client(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
    return client


WRITES = [
    ("post", "/api/v1/deployments/"),
    ("post", "/api/v1/promotions/"),
    ("post", "/api/v1/tokens/"),
    ("post", "/api/v1/grants/"),
    ("post", "/api/v1/service-accounts/"),
    ("post", "/api/v1/deployments/{deployment}/rollback/"),
    ("put", "/api/v1/deployments/{deployment}/monitoring/thresholds/"),
]


@pytest.fixture
def deployment(environments, alice):  # noqa: F811
    from tests.promotions.helpers import make_live

    return make_live(environments["dev"], "1").deployment


@pytest.mark.parametrize("persona", ["carol", "alice"])
@pytest.mark.parametrize(("method", "url"), WRITES)
@pytest.mark.parametrize("body", [DEEP, JUST_TOO_DEEP], ids=["1000-levels", "limit+1"])
def test_deep_json_to_an_api_write_is_a_400_naming_the_nesting(request, persona, method, url, body, deployment):
    user = request.getfixturevalue(persona)
    response = getattr(_client(user), method)(
        url.format(deployment=deployment.pk), body, content_type="application/json"
    )
    # A viewer may be refused before the body is read (403); whatever is read is refused as too deep.
    assert response.status_code in (400, 403), response.content[:300]
    assert response["Content-Type"] == "application/json"
    if response.status_code == 400:
        assert response.json()["code"] == "parse_error"
        assert f"nested deeper than {MAX_DEPTH} levels" in response.json()["detail"]


@pytest.mark.parametrize("persona", ["carol", "alice"])
def test_every_persona_gets_the_400_where_the_body_is_read_first(request, persona):
    """Creating one's own token is open to every signed-in user, so the body is always parsed."""
    response = _client(request.getfixturevalue(persona)).post("/api/v1/tokens/", DEEP, content_type="application/json")
    assert response.status_code == 400 and "nested deeper" in response.json()["detail"]


def test_nesting_at_the_limit_is_still_parsed(alice):
    """The limit refuses only what is deeper: a body at the limit reaches the serializer (which names the field)."""
    body = '{"name": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    response = _client(alice).post("/api/v1/tokens/", body, content_type="application/json")
    assert response.status_code == 400 and "name" in response.json()["errors"]


def test_a_json_form_field_refuses_deep_json_with_a_form_error():
    """No page edits JSON today; a form that does uses apps.common.forms.JSONField and gets the same limit."""

    class ConfigForm(forms.Form):
        config = JSONField()

    form = ConfigForm(data={"config": DEEP})
    assert not form.is_valid()
    assert f"nested deeper than {MAX_DEPTH} levels" in form.errors["config"][0]
    assert DEEP in form.as_p()  # shown back as typed, not re-parsed
    assert ConfigForm(data={"config": '{"a": [1, 2]}'}).is_valid()
