"""Every rule of the promotion workflow, through the service layer, against a real MLflow registry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import AuditEvent
from apps.common.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from apps.deployments.choices import RevisionStatus
from apps.deployments.models import Revision
from apps.events.models import Channel, Delivery
from apps.promotions import services
from apps.promotions.choices import PromotionStatus
from apps.promotions.models import PromotionPolicy, PromotionRequest, PromotionReview
from tests.promotions.helpers import MODEL, make_live

pytestmark = pytest.mark.django_db


def _request(actor, version="2", environment="production", model=MODEL, justification="AUC +0.02 on holdout"):
    return services.promotion_request(
        actor=actor, model_name=model, version=version, environment=environment, justification=justification
    )


def _policy(environments, **fields) -> PromotionPolicy:
    policy, _ = PromotionPolicy.objects.update_or_create(environment=environments["production"], defaults=fields)
    return policy


def _actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="promotion.").order_by("id").values_list("action", flat=True)
    )


class PromotionRequestTests:
    def test_a_lead_requests_a_promotion_and_it_is_audited(self, alice, environments, promo_registry):
        promotion = _request(alice)
        assert promotion.status == PromotionStatus.PENDING and promotion.requested_by == alice
        event = AuditEvent.objects.get(action="promotion.request")
        assert event.actor == alice and event.target_id == str(promotion.pk)
        assert event.data == {
            "model": MODEL,
            "version": "2",
            "environment": "production",
            "justification": "AUC +0.02 on holdout",
        }

    def test_an_admin_may_request(self, dave, environments, promo_registry):
        assert _request(dave).requested_by == dave

    @pytest.mark.parametrize("persona", ["carol", "bob"])
    def test_viewers_and_reviewers_may_not_request(self, persona, request, environments, promo_registry):
        with pytest.raises(ForbiddenError, match="Only ML leads and admins of production may request promotions; "):
            _request(request.getfixturevalue(persona))
        assert not PromotionRequest.objects.exists()

    def test_the_version_must_exist(self, alice, environments, promo_registry):
        with pytest.raises(NotFoundError, match="Version 99 of model 'credit-default'"):
            _request(alice, version="99")

    def test_an_unknown_environment_is_named(self, alice, environments, promo_registry):
        with pytest.raises(
            ApplicationError, match="Unknown environment 'qa'; expected one of dev, staging, production"
        ):
            _request(alice, environment="qa")

    def test_an_ungated_environment_needs_no_promotion(self, alice, environments, promo_registry):
        with pytest.raises(ApplicationError, match="staging is not gated") as error:
            _request(alice, environment="staging")
        assert error.value.code == "not_gated"

    def test_a_justification_is_required(self, alice, environments, promo_registry):
        with pytest.raises(ApplicationError, match="justification is required"):
            _request(alice, justification="   ")

    def test_the_policy_can_require_the_version_live_in_staging_first(self, alice, environments, promo_registry):
        _policy(environments, require_live_in=environments["staging"])
        with pytest.raises(ConflictError, match="must be live in staging .* serves no version of credit-default"):
            _request(alice)
        make_live(environments["staging"], "1")
        with pytest.raises(ConflictError, match="staging serves v1") as error:
            _request(alice)
        assert error.value.code == "not_live_in_source"
        make_live(environments["staging"], "2")
        assert _request(alice).status == PromotionStatus.PENDING

    def test_a_version_already_live_in_the_target_is_refused(self, alice, environments, promo_registry):
        make_live(environments["production"], "2")
        with pytest.raises(ConflictError, match="already live in production"):
            _request(alice)

    def test_a_newer_request_expires_the_older_pending_one(self, alice, dave, environments, promo_registry):
        older = _request(alice, version="1")
        newer = _request(dave, version="2")
        older.refresh_from_db()
        assert (
            older.status == PromotionStatus.EXPIRED
            and "replaced by a newer request (v2) by dave" in older.status_reason
        )
        assert newer.status == PromotionStatus.PENDING
        assert _actions() == ["promotion.request", "promotion.expire", "promotion.request"]

    def test_requests_for_other_models_are_left_alone(self, alice, environments, promo_registry):
        first = _request(alice)
        _request(alice, model="house-prices", version="1")
        first.refresh_from_db()
        assert first.status == PromotionStatus.PENDING

    def test_notifications_are_published_only_after_commit(
        self, alice, environments, promo_registry, django_capture_on_commit_callbacks
    ):
        Channel.objects.create(
            name="promotions",
            kind="slack",
            url="https://hooks.example.test/x",
            environment=environments["production"],
            events=["promotion.requested"],
        )
        with django_capture_on_commit_callbacks() as callbacks:
            _request(alice)
            assert not Delivery.objects.exists(), "nothing is recorded before the commit"
        assert len(callbacks) == 1
        callbacks[0]()
        assert Delivery.objects.get().event.name == "promotion.requested"


class PromotionApproveTests:
    def test_a_reviewer_approval_executes_moves_the_alias_and_starts_the_rollout(
        self, alice, bob, environments, promo_registry, mlflow_client, django_capture_on_commit_callbacks
    ):
        promotion = _request(alice)
        with django_capture_on_commit_callbacks() as callbacks:
            result = services.promotion_approve(actor=bob, promotion=promotion, comment="metrics look good")
        assert result.status == PromotionStatus.EXECUTED and result.decided_at and result.executed_at
        revision = result.executed_revision
        assert revision.status == RevisionStatus.QUEUED and revision.model_version == "2"
        assert revision.deployment.environment.name == "production" and revision.requested_by == alice
        queued = [callback.__qualname__.split(".<locals>")[0] for callback in callbacks]
        assert queued == ["publish", "revision_enqueue", "publish"], "the rollout and notifications wait for the commit"
        model = mlflow_client.get_registered_model(MODEL)
        assert str(model.aliases["production"]) == "2"
        tags = mlflow_client.get_model_version(MODEL, "2").tags
        assert tags["promotion.production.request"] == str(promotion.pk)
        assert tags["promotion.production.approvers"] == "bob"
        assert tags["promotion.production.requested_by"] == "alice"
        assert _actions() == ["promotion.request", "promotion.approve", "promotion.execute"]
        execute = AuditEvent.objects.get(action="promotion.execute")
        assert execute.data["approvers"] == ["bob"]
        assert (execute.data["revision"], execute.data["revision_id"]) == (revision.label, revision.pk)
        # The deploy is the reviewer's click (their session), on the lead's request: the audit says both.
        deploy = AuditEvent.objects.get(action="deployment.deploy")
        assert deploy.actor == bob and deploy.data["requested_by"] == "alice"
        assert deploy.data["executed"] == "on approval by bob, requested by alice"
        assert deploy.data["revision"] == revision.label == "r1"

    def test_a_policy_requiring_a_strategy_makes_the_approved_deploy_use_it(
        self, alice, bob, environments, promo_registry
    ):
        production = environments["production"]
        production.rollout_strategy = {"steps": [5, 50], "step_seconds": 120}
        production.save()
        _policy(environments, required_strategy="canary")
        result = services.promotion_approve(actor=bob, promotion=_request(alice), comment="")
        strategy = result.executed_revision.strategy
        assert (strategy["type"], strategy["steps"], strategy["step_seconds"]) == ("canary", [5, 50], 120)
        assert AuditEvent.objects.get(action="deployment.deploy").data["strategy"] == "canary"

    def test_nobody_approves_their_own_request(self, alice, dave, environments, promo_registry):
        promotion = _request(dave)
        with pytest.raises(ForbiddenError, match="You requested promotion .* cannot approve it") as error:
            services.promotion_approve(actor=dave, promotion=promotion)
        assert error.value.code == "self_approval"
        assert not PromotionReview.objects.exists()

    @pytest.mark.parametrize("persona", ["carol", "alice"])
    def test_viewers_and_leads_may_not_approve(self, persona, request, dave, environments, promo_registry):
        promotion = _request(dave)
        with pytest.raises(ForbiddenError, match="Only reviewers and admins of production may approve promotions"):
            services.promotion_approve(actor=request.getfixturevalue(persona), promotion=promotion)

    def test_an_admin_counts_as_a_reviewer(self, alice, dave, environments, promo_registry):
        promotion = services.promotion_approve(actor=dave, promotion=_request(alice))
        assert promotion.status == PromotionStatus.EXECUTED

    def test_the_policy_can_ask_for_an_admin(self, alice, bob, dave, environments, promo_registry):
        _policy(environments, approver_role="admin")
        promotion = _request(alice)
        with pytest.raises(ForbiddenError, match="Only admins of production may approve .*; bob is reviewer there"):
            services.promotion_approve(actor=bob, promotion=promotion)
        assert services.promotion_approve(actor=dave, promotion=promotion).status == PromotionStatus.EXECUTED

    def test_two_approvals_needed_and_one_person_counts_once(self, alice, bob, erin, environments, promo_registry):
        _policy(environments, approvals_required=2)
        promotion = _request(alice)
        first = services.promotion_approve(actor=bob, promotion=promotion)
        assert first.status == PromotionStatus.PENDING
        again = services.promotion_approve(actor=bob, promotion=promotion)
        assert again.status == PromotionStatus.PENDING and promotion.reviews.count() == 1
        final = services.promotion_approve(actor=erin, promotion=promotion)
        assert final.status == PromotionStatus.EXECUTED
        assert _actions() == ["promotion.request", "promotion.approve", "promotion.approve", "promotion.execute"]

    def test_a_second_click_after_execution_is_a_noop(self, alice, bob, environments, promo_registry):
        promotion = services.promotion_approve(actor=bob, promotion=_request(alice))
        again = services.promotion_approve(actor=bob, promotion=promotion)
        assert again.status == PromotionStatus.EXECUTED and again.executed_revision_id == promotion.executed_revision_id
        assert Revision.objects.count() == 1 and _actions().count("promotion.approve") == 1

    @pytest.mark.parametrize("final", ["cancelled", "rejected"])
    def test_only_pending_requests_can_be_approved(self, final, alice, bob, erin, environments, promo_registry):
        promotion = _request(alice)
        if final == "cancelled":
            services.promotion_cancel(actor=alice, promotion=promotion)
        else:
            services.promotion_reject(actor=erin, promotion=promotion)
        with pytest.raises(ConflictError, match=f"Only pending requests can be decided; promotion #\\d+ is {final}"):
            services.promotion_approve(actor=bob, promotion=promotion)

    def test_a_decision_cannot_be_changed(self, alice, bob, environments, promo_registry):
        _policy(environments, approvals_required=2)
        promotion = _request(alice)
        services.promotion_approve(actor=bob, promotion=promotion)
        with pytest.raises(ConflictError, match="already decided to approve") as error:
            services.promotion_reject(actor=bob, promotion=promotion)
        assert error.value.code == "already_decided"

    def test_a_request_older_than_the_policy_expires_when_decided(self, alice, bob, environments, promo_registry):
        _policy(environments, max_age_hours=2)
        promotion = _request(alice)
        PromotionRequest.objects.filter(pk=promotion.pk).update(created_at=timezone.now() - timedelta(hours=3))
        with pytest.raises(ConflictError, match="waited more than 2 hours and has expired") as error:
            services.promotion_approve(actor=bob, promotion=promotion)
        assert error.value.code == "expired"
        promotion.refresh_from_db()
        assert promotion.status == PromotionStatus.EXPIRED, "the expiry stands although the approval was refused"
        assert "promotion.expire" in _actions()

    def test_an_unknown_request_is_not_found(self, bob, environments, promo_registry):
        with pytest.raises(NotFoundError, match="Promotion request 999 does not exist"):
            services.promotion_approve(actor=bob, promotion=999)

    def test_a_failed_execution_stays_approved_with_the_reason_and_is_retried(
        self, alice, bob, environments, promo_registry
    ):
        from apps.promotions.tasks import execute_approved

        busy = make_live(environments["production"], "1")
        Revision.objects.create(deployment=busy.deployment, number=2, model_version="1")  # a rollout in progress
        promotion = services.promotion_approve(actor=bob, promotion=_request(alice))
        assert promotion.status == PromotionStatus.APPROVED
        assert "still rolling out" in promotion.execution_error
        Revision.objects.filter(deployment=busy.deployment, number=2).update(status=RevisionStatus.FAILED)
        assert execute_approved.apply().get() == 1
        promotion.refresh_from_db()
        assert promotion.status == PromotionStatus.EXECUTED and promotion.execution_error == ""
        assert promotion.executed_revision.number == 3
        retried = AuditEvent.objects.filter(action__in=["promotion.execute", "deployment.deploy"])
        assert sorted(retried.values_list("action", "source")) == [
            ("deployment.deploy", "system"),
            ("promotion.execute", "system"),
        ]

    def test_execute_refuses_a_request_that_is_not_approved(self, alice, environments, promo_registry):
        with pytest.raises(ConflictError, match="Only approved requests are executed"):
            services.promotion_execute(promotion=_request(alice))


class PromotionRejectTests:
    def test_a_reviewer_rejects_with_a_comment(self, alice, bob, environments, promo_registry, mlflow_client):
        promotion = services.promotion_reject(actor=bob, promotion=_request(alice), comment="drift on income")
        assert promotion.status == PromotionStatus.REJECTED and promotion.decided_at
        assert promotion.reviews.get().comment == "drift on income"
        assert mlflow_client.get_registered_model(MODEL).aliases["production"] in ("1", 1), "nothing moved"
        assert _actions() == ["promotion.request", "promotion.reject"]
        assert not Revision.objects.exists()

    def test_rejecting_twice_is_a_noop(self, alice, bob, environments, promo_registry):
        promotion = services.promotion_reject(actor=bob, promotion=_request(alice))
        assert services.promotion_reject(actor=bob, promotion=promotion).status == PromotionStatus.REJECTED
        assert _actions().count("promotion.reject") == 1

    def test_nobody_rejects_their_own_request(self, dave, environments, promo_registry):
        with pytest.raises(ForbiddenError, match="cannot reject it"):
            services.promotion_reject(actor=dave, promotion=_request(dave))

    def test_a_lead_may_not_reject(self, alice, dave, environments, promo_registry):
        with pytest.raises(ForbiddenError, match="may reject"):
            services.promotion_reject(actor=alice, promotion=_request(dave))


class PromotionCancelTests:
    def test_the_requester_cancels(self, alice, environments, promo_registry):
        promotion = services.promotion_cancel(actor=alice, promotion=_request(alice), comment="wrong version")
        assert promotion.status == PromotionStatus.CANCELLED
        assert promotion.status_reason == "cancelled by alice: wrong version"
        assert _actions() == ["promotion.request", "promotion.cancel"]

    def test_cancelling_twice_is_a_noop(self, alice, environments, promo_registry):
        promotion = services.promotion_cancel(actor=alice, promotion=_request(alice))
        services.promotion_cancel(actor=alice, promotion=promotion)
        assert _actions().count("promotion.cancel") == 1

    @pytest.mark.parametrize("persona", ["bob", "dave", "carol"])
    def test_only_the_requester_cancels(self, persona, request, alice, environments, promo_registry):
        with pytest.raises(ForbiddenError, match="Only alice, who requested promotion #\\d+, can cancel it"):
            services.promotion_cancel(actor=request.getfixturevalue(persona), promotion=_request(alice))

    def test_only_a_pending_request_is_cancelled(self, alice, bob, environments, promo_registry):
        promotion = services.promotion_approve(actor=bob, promotion=_request(alice))
        with pytest.raises(ConflictError, match="Only pending requests can be cancelled; promotion #\\d+ is executed"):
            services.promotion_cancel(actor=alice, promotion=promotion)


class PromotionExpireStaleTests:
    def test_pending_requests_older_than_the_policy_expire(self, alice, environments, promo_registry):
        from apps.promotions.tasks import expire_stale

        _policy(environments, max_age_hours=24)
        old, fresh = _request(alice), _request(alice, model="house-prices", version="1")
        PromotionRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
        assert expire_stale() == 1
        old.refresh_from_db()
        fresh.refresh_from_db()
        assert old.status == PromotionStatus.EXPIRED and old.status_reason == "pending for more than 24 hours"
        assert fresh.status == PromotionStatus.PENDING
        assert expire_stale() == 0, "running it again changes nothing"
        assert AuditEvent.objects.get(action="promotion.expire").actor is None
