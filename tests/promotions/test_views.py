"""The promotion pages: the inbox, the request page with its comparison, and each action with each role."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.promotions import comparison, services
from apps.promotions.models import PromotionRequest
from apps.registry.types import ColumnSpec, Signature
from tests.promotions.helpers import MODEL, make_live

pytestmark = pytest.mark.django_db

ROLES = {"viewer": "carol", "lead": "alice", "reviewer": "bob", "admin": "dave"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("apps.deployments.tasks.revision_run.apply_async", lambda **_: None)


@pytest.fixture
def pending(alice, environments, promo_registry) -> PromotionRequest:
    return services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="200 trees beat 50"
    )


def _login(client, request, role: str):
    user = request.getfixturevalue(ROLES[role])
    client.force_login(user)
    return user


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# (action, role) -> the request's status afterwards; alice (the lead) requested it.
MATRIX = {
    ("approve", "viewer"): "pending",
    ("approve", "lead"): "pending",
    ("approve", "reviewer"): "executed",
    ("approve", "admin"): "executed",
    ("reject", "viewer"): "pending",
    ("reject", "lead"): "pending",
    ("reject", "reviewer"): "rejected",
    ("reject", "admin"): "rejected",
    ("cancel", "viewer"): "pending",
    ("cancel", "lead"): "cancelled",
    ("cancel", "reviewer"): "pending",
    ("cancel", "admin"): "pending",
}


@pytest.mark.parametrize(("action", "role"), list(MATRIX))
def test_role_action_matrix(action, role, request, client, pending):
    _login(client, request, role)
    response = client.post(f"/promotions/{pending.pk}/{action}/", {"comment": "from the page"})
    assert response.status_code == 302 and response["Location"] == f"/promotions/{pending.pk}/"
    pending.refresh_from_db()
    assert pending.status == MATRIX[(action, role)]
    (message,) = _messages(response)
    if pending.status == "pending":
        assert message.startswith(("Only ", "You requested"))
    else:
        assert f"#{pending.pk}" in message


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("lead", True), ("reviewer", False), ("admin", True)])
def test_requesting_from_the_version_page_by_role(role, allowed, request, client, environments, promo_registry):
    _login(client, request, role)
    page = client.get(f"/models/{MODEL}/versions/2/").content.decode()
    assert ('id="request-promotion"' in page) is (role in ("lead", "admin"))
    body = {"model": MODEL, "version": "2", "environment": "production", "justification": "better"}
    response = client.post("/promotions/new/", body)
    promotion = PromotionRequest.objects.first()
    if allowed:
        assert response["Location"] == f"/promotions/{promotion.pk}/"
        assert promotion.requested_by.username == ROLES[role]
    else:
        assert promotion is None and response["Location"] == f"/models/{MODEL}/versions/2/"
        assert _messages(response)[0].startswith("Only ML leads and admins of production may request promotions")


def test_the_version_page_offers_only_gated_environments_and_lists_promotions(client, alice, pending):
    client.force_login(alice)
    page = client.get(f"/models/{MODEL}/versions/2/").content.decode()
    form = page[page.index('id="promotion-form"') : page.index("</form>", page.index('id="promotion-form"'))]
    assert '<option value="production">' in form and '"staging"' not in form and '"dev"' not in form
    assert f'href="/promotions/{pending.pk}/"' in page


def test_a_refused_request_says_why_on_the_version_page(client, alice, environments, promo_registry):
    make_live(environments["production"], "2")
    client.force_login(alice)
    body = {"model": MODEL, "version": "2", "environment": "production", "justification": "again"}
    response = client.post("/promotions/new/", body, follow=True)
    assert "credit-default v2 is already live in production." in response.content.decode()


def test_a_refused_request_keeps_what_was_typed_once(client, alice, environments, promo_registry):
    make_live(environments["production"], "2")
    client.force_login(alice)
    body = {"model": MODEL, "version": "2", "environment": "production", "justification": "recall up 4 points"}
    response = client.post("/promotions/new/", body, follow=True)
    page = response.content.decode()
    assert 'value="recall up 4 points"' in page and '<option value="production" selected>' in page
    again = client.get(f"/models/{MODEL}/versions/2/").content.decode()
    assert "recall up 4 points" not in again  # shown once, not forever


def test_a_request_without_justification_is_refused(client, alice, environments, promo_registry):
    client.force_login(alice)
    response = client.post("/promotions/new/", {"model": MODEL, "version": "2", "environment": "production"})
    assert response["Location"] == f"/models/{MODEL}/versions/2/"
    assert "justification" in _messages(response)[0] and not PromotionRequest.objects.exists()


def test_the_request_page_compares_the_candidate_with_what_is_live(client, bob, environments, promo_registry, alice):
    make_live(environments["production"], "1")
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="200 trees beat 50"
    )
    client.force_login(bob)
    page = client.get(f"/promotions/{promotion.pk}/").content.decode()
    assert "production served" in page and "200 trees beat 50" in page
    assert 'id="metrics"' in page and "roc_auc" in page
    params = page[page.index('id="params"') :]
    assert "n_estimators" in params and ">50<" in params and ">200<" in params
    assert "The inputs are the same." in page
    assert 'id="approve"' in page and 'id="reject"' in page and 'id="cancel"' not in page


def test_the_comparison_flags_added_removed_and_retyped_inputs():
    before = Signature(inputs=[ColumnSpec("age", "long"), ColumnSpec("income", "double")], outputs=[], params=[])
    after = Signature(inputs=[ColumnSpec("age", "double"), ColumnSpec("region", "string")], outputs=[], params=[])
    changes = {(c.name, c.change, c.before, c.after) for c in comparison._signature_changes(before, after)}
    assert changes == {
        ("region", "added", None, "string"),
        ("income", "removed", "double", None),
        ("age", "retyped", "long", "double"),
    }


def test_the_requester_sees_cancel_and_why_they_cannot_approve(client, alice, pending):
    client.force_login(alice)
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    assert 'id="cancel"' in page and 'id="approve"' not in page


def test_a_viewer_sees_no_buttons_and_the_reason(client, carol, pending):
    client.force_login(carol)
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    assert 'id="approve"' not in page and 'id="cancel"' not in page
    assert "Only reviewers and admins of production may decide promotions; carol is viewer there." in page


def test_an_executed_request_links_its_rollout(client, bob, pending):
    client.force_login(bob)
    response = client.post(f"/promotions/{pending.pk}/approve/", {"comment": "ship it"}, follow=True)
    page = response.content.decode()
    pending.refresh_from_db()
    assert f'href="/revisions/{pending.executed_revision_id}/"' in page and 'id="executed"' in page
    assert "ship it" in page and "the alias moved and the rollout started" in page


def test_the_inbox_lists_pending_first_and_filters(client, carol, bob, alice, pending):
    rejected = services.promotion_request(
        actor=alice, model_name="house-prices", version="1", environment="production", justification="x"
    )
    services.promotion_reject(actor=bob, promotion=rejected)
    client.force_login(carol)
    page = client.get("/promotions/").content.decode()
    assert page.index(f'href="/promotions/{pending.pk}/"') < page.index(f'href="/promotions/{rejected.pk}/"')
    assert 'class="active">Promotions</a>' in page
    filtered = client.get("/promotions/?status=rejected").content.decode()
    assert f'href="/promotions/{rejected.pk}/"' in filtered and f'href="/promotions/{pending.pk}/"' not in filtered
    assert "No promotion requests that match" in client.get("/promotions/?model=nothing").content.decode()


def test_the_inbox_costs_a_fixed_number_of_queries(client, carol, alice, environments, promo_registry):
    client.force_login(carol)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/promotions/").status_code == 200
        return len(queries)

    services.promotion_request(actor=alice, model_name=MODEL, version="2", environment="production", justification="a")
    one = count()
    for model in ("house-prices", "customer-churn"):
        services.promotion_request(
            actor=alice, model_name=model, version="1", environment="production", justification="b"
        )
    assert count() == one


def test_with_nothing_deployed_the_page_compares_with_the_environments_alias(client, bob, pending):
    client.force_login(bob)
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    assert "which the <code>@production</code> alias named" in page and "Live v1" in page
    assert "n_estimators" in page[page.index('id="params"') :]


def test_the_page_shows_the_candidate_revision_in_the_source_environment(
    client, bob, alice, environments, promo_registry
):
    from apps.promotions.models import PromotionPolicy

    PromotionPolicy.objects.create(environment=environments["production"], require_live_in=environments["staging"])
    staging = make_live(environments["staging"], "2")
    promotion = services.promotion_request(
        actor=alice, model_name=MODEL, version="2", environment="production", justification="live in staging"
    )
    client.force_login(bob)
    page = client.get(f"/promotions/{promotion.pk}/").content.decode()
    assert "<th>In staging</th>" in page and f'href="/revisions/{staging.pk}/"' in page
    assert "live in staging first" in page


def test_a_reviewer_who_approved_waits_for_the_second_approval(client, bob, erin, pending, environments):
    from apps.promotions.models import PromotionPolicy

    PromotionPolicy.objects.create(environment=environments["production"], approvals_required=2)
    client.force_login(bob)
    client.post(f"/promotions/{pending.pk}/approve/", {"comment": "one"})
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    assert "1 of 2 approvals" in page and "You have decided already." in page and 'id="approve"' not in page
    client.force_login(erin)
    response = client.post(f"/promotions/{pending.pk}/approve/", {"comment": "two"}, follow=True)
    assert "the alias moved and the rollout started" in response.content.decode()


def test_an_admin_reads_policies_and_requests_in_the_admin_but_cannot_change_requests(client, dave, pending):
    dave.is_superuser = True  # as demo_setup makes the admin
    dave.save()
    client.force_login(dave)
    assert client.get("/admin/promotions/promotionpolicy/").status_code == 200
    assert client.get("/admin/promotions/promotionrequest/").status_code == 200
    assert client.get(f"/admin/promotions/promotionrequest/{pending.pk}/change/").status_code == 200
    response = client.post(f"/admin/promotions/promotionrequest/{pending.pk}/change/", {"status": "executed"})
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_the_request_page_shows_its_audit_trail_down_to_the_rollout(client, bob, pending):
    services.promotion_approve(actor=bob, promotion=pending, comment="ship it")
    pending.refresh_from_db()
    client.force_login(bob)
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    trail = page[page.index('id="audit"') :]
    positions = [
        trail.index(f"<code>{a}</code>") for a in ("promotion.request", "promotion.approve", "promotion.execute")
    ]
    assert positions == sorted(positions)
    # The rollout is the approving reviewer's click (their session); the audit says requested by alice.
    assert "<code>deployment.deploy</code> by bob" in trail and "approvers bob" in trail
    assert "executed on approval by bob, requested by alice" in trail
    assert f'href="/revisions/{pending.executed_revision_id}/"' in trail


def test_the_request_shows_the_candidates_shadow_agreement_where_it_proved_itself(client, bob, pending, environments):
    from django.utils import timezone

    from apps.deployments.models import AnalysisCheck

    make_live(environments["dev"], "1")
    shadowed = make_live(environments["dev"], "2")
    shadowed.strategy = {"type": "shadow"}
    shadowed.save()
    for step, value in enumerate([0.995, 0.9875]):
        AnalysisCheck.objects.create(
            revision=shadowed,
            checked_at=timezone.now(),
            step=step,
            weight=0,
            metric="agreement",
            subject="r2",
            value=value,
            threshold=0.99,
            verdict="pass" if value >= 0.99 else "fail",
            message=f"agreement {value:.1%} on r2 vs r1",
        )
    client.force_login(bob)
    html = client.get(f"/promotions/{pending.pk}/").content.decode()
    row = html[html.index('id="shadow-evidence"') :]
    row = row[: row.index("</tr>")]
    assert "0.988 in the last of 2 intervals of mirrored traffic (lowest 0.988)" in row
    assert f'href="/revisions/{shadowed.pk}/"' in row and "agreement 98.8% on r2 vs r1" in row


def test_a_request_without_shadow_evidence_shows_no_such_row(client, bob, pending):
    client.force_login(bob)
    assert 'id="shadow-evidence"' not in client.get(f"/promotions/{pending.pk}/").content.decode()
