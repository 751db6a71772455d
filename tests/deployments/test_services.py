"""The rules of asking for a rollout, rolling back and deleting; the rollout itself is in test_pipeline."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.common.errors import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from apps.deployments import services, tasks
from apps.deployments.choices import DeploymentStatus, RevisionStatus, StepName
from apps.deployments.models import Deployment, Revision

pytestmark = pytest.mark.django_db


def _deploy(actor, version="2", environment="dev", model="credit-default", **kwargs) -> Revision:
    return services.deployment_create(
        actor=actor, model_name=model, model_version=version, environment=environment, **kwargs
    )


class DeploymentCreateTests:
    def test_a_lead_gets_a_queued_revision_with_every_step_and_a_task_after_commit(
        self, alice, environments, registry, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            revision = _deploy(alice)
        assert len(callbacks) == 1, "the rollout is queued once the transaction commits"
        assert revision.status == RevisionStatus.QUEUED and revision.label == "r1"
        assert [s.name for s in revision.steps.all()] == [
            StepName.RESOLVE,
            StepName.BUILD,
            StepName.PUSH,
            StepName.APPLY,
            StepName.ROLLOUT,
            StepName.SMOKE_TEST,
            StepName.TRAFFIC,
            StepName.LIVE,
        ]
        assert revision.deployment.name == "credit-default" and revision.deployment.status == DeploymentStatus.PENDING
        event = AuditEvent.objects.get(action="deployment.deploy")
        assert event.actor == alice and event.data["version"] == "2" and event.data["environment"] == "dev"

    @pytest.mark.parametrize("persona", ["carol", "bob"])
    def test_viewers_and_reviewers_may_not_deploy(self, persona, request, environments, registry):
        with pytest.raises(
            ForbiddenError,
            match=r"Only ML leads and admins of dev may deploy; (carol is viewer|bob is reviewer) there\.",
        ):
            _deploy(request.getfixturevalue(persona))
        assert not Revision.objects.exists()

    def test_an_admin_may_deploy(self, dave, environments, registry):
        assert _deploy(dave).requested_by == dave

    def test_a_gated_environment_needs_a_promotion(self, alice, environments, registry):
        with pytest.raises(ConflictError, match="production is gated") as error:
            _deploy(alice, environment="production")
        assert error.value.code == "promotion_required"

    def test_an_unknown_environment_is_named(self, alice, environments, registry):
        with pytest.raises(
            ApplicationError, match="Unknown environment 'qa'; expected one of dev, staging, production"
        ):
            _deploy(alice, environment="qa")

    def test_an_unknown_version_is_named(self, alice, environments, registry):
        with pytest.raises(NotFoundError, match="Version 9 of model 'credit-default'"):
            _deploy(alice, version="9")

    def test_the_same_idempotency_key_returns_the_first_revision(self, alice, environments, registry):
        first = _deploy(alice, idempotency_key="ci-run-77")
        again = _deploy(alice, idempotency_key="ci-run-77")
        assert again.pk == first.pk and Revision.objects.count() == 1

    def test_a_reused_key_for_another_request_is_refused(self, alice, environments, registry):
        _deploy(alice, idempotency_key="k1")
        with pytest.raises(ConflictError, match="already used for credit-default v2 in dev"):
            _deploy(alice, version="1", idempotency_key="k1")

    def test_a_second_rollout_waits_for_the_first(self, alice, environments, registry):
        _deploy(alice)
        with pytest.raises(ConflictError, match="r1 of credit-default in dev is still rolling out"):
            _deploy(alice, version="1")

    def test_each_environment_gets_its_own_deployment(self, alice, environments, registry):
        _deploy(alice, environment="dev")
        _deploy(alice, environment="staging")
        assert Deployment.objects.count() == 2

    def test_resource_names_are_dns_labels(self, alice, environments, registry):
        revision = _deploy(alice, model="customer-churn", version="3")
        assert revision.deployment.name == "customer-churn"


class DeploymentRollbackTests:
    def _live_pair(self, alice):
        first = _deploy(alice, version="1")
        Revision.objects.filter(pk=first.pk).update(status=RevisionStatus.SUPERSEDED)
        second = _deploy(alice, version="2")
        Revision.objects.filter(pk=second.pk).update(status=RevisionStatus.LIVE)
        Deployment.objects.filter(pk=first.deployment_id).update(live_revision=second, status=DeploymentStatus.LIVE)
        return Revision.objects.get(pk=first.pk), Revision.objects.get(pk=second.pk)

    def test_it_restores_an_earlier_live_revision_as_a_new_revision(self, alice, environments, registry):
        first, second = self._live_pair(alice)
        revision = services.deployment_rollback(actor=alice, deployment=first.deployment, to_revision=first)
        assert (revision.label, revision.kind, revision.model_version, revision.rollback_of) == (
            "r3",
            "rollback",
            "1",
            first,
        )
        assert [s.name for s in revision.steps.all()] == ["apply", "rollout", "smoke_test", "live"]

    def test_the_live_revision_cannot_be_restored(self, alice, environments, registry):
        first, second = self._live_pair(alice)
        with pytest.raises(ConflictError, match="r2 is already live"):
            services.deployment_rollback(actor=alice, deployment=first.deployment, to_revision=second)

    def test_a_revision_that_never_served_cannot_be_restored(self, alice, environments, registry):
        first, _ = self._live_pair(alice)
        Revision.objects.filter(pk=first.pk).update(status=RevisionStatus.FAILED)
        first.refresh_from_db()
        with pytest.raises(ConflictError, match="never went live"):
            services.deployment_rollback(actor=alice, deployment=first.deployment, to_revision=first)

    def test_a_viewer_may_not_roll_back(self, alice, carol, environments, registry):
        first, _ = self._live_pair(alice)
        with pytest.raises(ForbiddenError):
            services.deployment_rollback(actor=carol, deployment=first.deployment, to_revision=first)


class DeploymentDeleteTests:
    def test_deleting_twice_is_a_noop_and_audited_once(self, alice, environments, registry):
        revision = _deploy(alice)
        Revision.objects.filter(pk=revision.pk).update(status=RevisionStatus.LIVE)
        services.deployment_delete(actor=alice, deployment=revision.deployment)
        services.deployment_delete(actor=alice, deployment=revision.deployment)
        assert Deployment.objects.get().status == DeploymentStatus.DELETING
        assert AuditEvent.objects.filter(action="deployment.delete").count() == 1

    def test_the_tear_down_task_finishes_the_delete_audited_once_as_the_system(
        self, alice, environments, registry, local_dirs
    ):
        revision = _deploy(alice)
        Revision.objects.filter(pk=revision.pk).update(status=RevisionStatus.LIVE)
        services.deployment_delete(actor=alice, deployment=revision.deployment)
        kwargs = {"deployment_id": revision.deployment_id}
        assert tasks.tear_down.apply(kwargs=kwargs).get() == "deleted"
        assert tasks.tear_down.apply(kwargs=kwargs).get() == "nothing to do"
        deployment = Deployment.objects.get()
        assert (deployment.status, deployment.live_revision, deployment.endpoint_url) == ("deleted", None, "")
        event = AuditEvent.objects.get(action="deployment.deleted")
        assert (event.actor_name, event.source, event.via, event.ip) == ("system", "system", "", None)
        assert (event.target_type, event.target_id) == ("deployment", str(deployment.pk))
        assert event.data["before"] == {"status": "deleting"} and event.data["after"] == {"status": "deleted"}

    def test_a_rollout_in_progress_blocks_delete(self, alice, environments, registry):
        revision = _deploy(alice)
        with pytest.raises(ConflictError, match="in progress"):
            services.deployment_delete(actor=alice, deployment=revision.deployment)


class EnvironmentValidationTests:
    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"target": "kubernetes", "namespace": "ml", "image_builder": "none"}, "image_builder"),
            ({"target": "kubernetes", "image_builder": "acr", "image_registry": "r.azurecr.io/m"}, "namespace"),
            ({"image_builder": "local"}, "image_registry"),
            ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
            ({"name": "Prod Env"}, "name"),
        ],
    )
    def test_inconsistent_environments_are_refused_naming_the_field(self, fields, field):
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError) as error:
            services.environment_ensure(**{"name": "qa", **fields})
        assert field in error.value.message_dict

    def test_a_complete_kubernetes_environment_is_accepted(self):
        environment, created = services.environment_ensure(
            name="aks-prod",
            target="kubernetes",
            namespace="models",
            image_builder="acr",
            image_registry="r.azurecr.io/m",
        )
        assert created and environment.gated is False
