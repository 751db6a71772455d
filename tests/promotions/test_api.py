"""The REST API of promotions: every action with every role (each cell asserted), then the details."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import AuditEvent
from apps.accounts.services import api_token_create
from apps.promotions import services
from apps.promotions.models import PromotionRequest
from tests.promotions.helpers import MODEL, make_live

pytestmark = pytest.mark.django_db

ROLES = {"viewer": "carol", "lead": "alice", "reviewer": "bob", "admin": "dave"}


@pytest.fixture
def as_user(request):
    def client_for(persona: str) -> APIClient:
        user = request.getfixturevalue(persona)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t').key}")
        return client

    return client_for


@pytest.fixture
def pending(alice, environments, promo_registry) -> PromotionRequest:
    """A pending request by alice (the lead)."""
    return services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="AUC +0.02"
    )


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("apps.deployments.tasks.revision_run.apply_async", lambda **_: None)


def _create(client: APIClient):
    body = {"model": MODEL, "version": "2", "environment": "production", "justification": "AUC +0.02"}
    return client.post("/api/v1/promotions/", body, format="json")


# (action, role) -> expected HTTP status; alice (the lead) requested the promotion the actions act on.
MATRIX = {
    ("create", "viewer"): 403,
    ("create", "lead"): 201,
    ("create", "reviewer"): 403,
    ("create", "admin"): 201,
    ("list", "viewer"): 200,
    ("list", "lead"): 200,
    ("list", "reviewer"): 200,
    ("list", "admin"): 200,
    ("retrieve", "viewer"): 200,
    ("retrieve", "lead"): 200,
    ("retrieve", "reviewer"): 200,
    ("retrieve", "admin"): 200,
    ("approve", "viewer"): 403,
    ("approve", "lead"): 403,
    ("approve", "reviewer"): 202,
    ("approve", "admin"): 202,
    ("reject", "viewer"): 403,
    ("reject", "lead"): 403,
    ("reject", "reviewer"): 200,
    ("reject", "admin"): 200,
    ("cancel", "viewer"): 403,
    ("cancel", "lead"): 200,
    ("cancel", "reviewer"): 403,
    ("cancel", "admin"): 403,
}
RESULT = {"create": "pending", "approve": "executed", "reject": "rejected", "cancel": "cancelled"}


@pytest.mark.parametrize(("action", "role"), list(MATRIX))
def test_role_action_matrix(action, role, as_user, pending, environments, mlflow_client):
    client = as_user(ROLES[role])
    if action == "create":
        pending.delete()
        response = _create(client)
    elif action == "list":
        response = client.get("/api/v1/promotions/")
    elif action == "retrieve":
        response = client.get(f"/api/v1/promotions/{pending.pk}/")
    else:
        response = client.post(f"/api/v1/promotions/{pending.pk}/{action}/", {"comment": "ok"}, format="json")
    expected = MATRIX[(action, role)]
    assert response.status_code == expected, response.content
    body = response.json()
    if expected == 403:
        assert body["code"] in {"forbidden", "not_a_reviewer", "not_requester"} and body["detail"]
        assert PromotionRequest.objects.filter(status="pending").count() == (0 if action == "create" else 1)
        return
    if action == "list":
        assert [p["id"] for p in body["results"]] == [pending.pk]
    elif action in RESULT:
        assert body["status"] == RESULT[action]
        assert AuditEvent.objects.filter(action=f"promotion.{'request' if action == 'create' else action}").exists()
    if action == "approve":
        assert body["executed_revision"]["url"].endswith(f"/api/v1/revisions/{body['executed_revision']['id']}/")
        assert str(mlflow_client.get_registered_model(MODEL).aliases["production"]) == "2"
        assert AuditEvent.objects.get(action="promotion.approve").source == "api"


def test_every_action_needs_authentication(pending):
    client = APIClient()
    assert client.get("/api/v1/promotions/").status_code == 401
    assert _create(client).status_code == 401
    for action in ("approve", "reject", "cancel"):
        assert client.post(f"/api/v1/promotions/{pending.pk}/{action}/").status_code == 401


def test_an_admin_cannot_approve_their_own_request(as_user, dave, environments, promo_registry):
    client = as_user("dave")
    created = _create(client).json()
    response = client.post(f"/api/v1/promotions/{created['id']}/approve/", {}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"You requested promotion #{created['id']}, so you cannot approve it: another reviewer must decide.",
        "code": "self_approval",
    }


def test_a_retried_approval_returns_the_same_state(as_user, pending):
    client = as_user("bob")
    first = client.post(f"/api/v1/promotions/{pending.pk}/approve/", format="json")
    second = client.post(f"/api/v1/promotions/{pending.pk}/approve/", format="json")
    assert first.status_code == second.status_code == 202
    assert first.json()["executed_revision"] == second.json()["executed_revision"]
    assert [r["reviewer"] for r in second.json()["reviews"]] == ["bob"]


def test_deciding_a_request_that_is_not_pending_is_a_conflict(as_user, pending, alice):
    services.promotion_cancel(actor=alice, promotion=pending)
    response = as_user("bob").post(f"/api/v1/promotions/{pending.pk}/approve/", format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "not_pending"
    assert "is cancelled" in response.json()["detail"]


def test_an_unknown_request_is_404(as_user, db):
    response = as_user("bob").post("/api/v1/promotions/999/approve/", format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_invalid_input_names_the_fields(as_user, environments, promo_registry):
    response = as_user("alice").post("/api/v1/promotions/", {"model": MODEL, "version": "two"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"version", "environment", "justification"}


def test_the_policy_rules_answer_in_words(as_user, environments, promo_registry):
    from apps.promotions.models import PromotionPolicy

    PromotionPolicy.objects.create(environment=environments["production"], require_live_in=environments["staging"])
    response = _create(as_user("alice"))
    assert response.status_code == 409 and response.json()["code"] == "not_live_in_source"
    make_live(environments["staging"], "2")
    assert _create(as_user("alice")).status_code == 201


def test_the_list_filters_by_status_model_and_environment_and_puts_pending_first(
    as_user, alice, bob, pending, environments, promo_registry
):
    other = services.promotion_request(
        actor=alice, model_name="house-prices", version="1", environment="production", justification="x"
    )
    services.promotion_reject(actor=bob, promotion=other)
    newest = services.promotion_request(
        actor=alice, model_name="customer-churn", version="1", environment="production", justification="y"
    )
    client = as_user("carol")

    def ids(query: str = "") -> list[int]:
        return [p["id"] for p in client.get(f"/api/v1/promotions/{query}").json()["results"]]

    assert ids() == [newest.pk, pending.pk, other.pk], "pending first, newest first"
    assert ids("?status=rejected") == [other.pk]
    assert ids("?model=house") == [other.pk]
    assert ids("?environment=production&status=pending") == [newest.pk, pending.pk]
    assert ids("?environment=staging") == []
    page = client.get("/api/v1/promotions/?page_size=1").json()
    assert page["count"] == 3 and page["next"] and len(page["results"]) == 1


def test_an_executed_request_reads_back_with_its_reviews_and_revision(as_user, pending, bob):
    services.promotion_approve(actor=bob, promotion=pending, comment="fine")
    body = as_user("carol").get(f"/api/v1/promotions/{pending.pk}/").json()
    assert body["status"] == "executed" and body["approvals"] == 1
    assert body["reviews"][0]["reviewer"] == "bob" and body["reviews"][0]["comment"] == "fine"
    assert body["requested_by"] == "alice" and body["executed_revision"]["id"]
    revision = as_user("carol").get(body["executed_revision"]["url"]).json()
    assert revision["environment"] == "production" and revision["model_version"] == "2"


def test_the_schema_documents_every_promotion_operation(as_user, db):
    schema = as_user("carol").get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "promotions_create",
        "promotions_list",
        "promotions_retrieve",
        "promotions_approve",
        "promotions_reject",
        "promotions_cancel",
    } <= operations
