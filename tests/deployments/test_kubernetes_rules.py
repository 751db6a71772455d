"""Issue 20, items 1, 2 and 8: what a real API server refuses, reproduced against the emulator (which now refuses
it too), and the control plane checking it first: environments sharing a namespace, names per kind, quantities."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from django.urls import reverse
from kubernetes.client.exceptions import ApiException

from apps.common.errors import ApplicationError, ConflictError
from apps.deployments import pipeline, services
from apps.deployments.backends import PermanentBackendError
from apps.deployments.choices import RevisionStatus, StepName, StepStatus
from apps.deployments.kube import KubernetesClient
from apps.deployments.models import Deployment, Environment
from apps.deployments.naming import derive_deployment_name
from apps.deployments.quantities import resources_errors
from apps.deployments.targets.base import ServingSpec
from apps.deployments.targets.kubernetes import KubernetesTarget

pytestmark = pytest.mark.django_db

KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
IMAGE = "registry.example/models/churn:aaa111"


def _spec(namespace: str, **changes: object) -> ServingSpec:
    base = ServingSpec(
        deployment="churn",
        namespace=namespace,
        environment="production",
        revision="r1",
        model_name="churn",
        model_version="1",
        model_uri="models:/churn/1",
        image=IMAGE,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def target(k8s_api) -> KubernetesTarget:
    return KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.05)


class SharedNamespaceTests:
    def test_a_dev_apply_does_not_replace_production_and_deleting_dev_leaves_productions_objects(
        self, target, k8s_controller, k8s_namespace
    ) -> None:
        target.apply(_spec(k8s_namespace), print)
        dev = _spec(k8s_namespace, environment="dev", image="registry.example/models/churn:dev999")
        with pytest.raises(PermanentBackendError) as refused:
            target.apply(dev, print)
        expected = f"Service {k8s_namespace}/churn belongs to deployment churn of environment production; dev will not"
        assert refused.value.message.startswith(expected)
        live = k8s_controller.get("Deployment", k8s_namespace, "churn")
        assert live["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
        logs: list[str] = []
        target.delete(dev, logs.append)
        for kind in KINDS:
            assert k8s_controller.get(kind, k8s_namespace, "churn") is not None, kind
        assert all("left alone" in line and "environment production" in line for line in logs)

    def test_the_emulator_refuses_a_field_another_manager_owns_unless_forced(self, k8s_api, k8s_namespace) -> None:
        core = KubernetesClient({"api_url": k8s_api.url}).core()
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
        apply = {"_content_type": "application/apply-patch+yaml"}
        core.patch_namespaced_config_map("c", k8s_namespace, body, field_manager="modelplane-production", **apply)
        body["data"]["a"] = "2"
        with pytest.raises(ApiException) as conflict:
            core.patch_namespaced_config_map("c", k8s_namespace, body, field_manager="modelplane-dev", **apply)
        assert conflict.value.status == 409
        message = json.loads(conflict.value.body)["message"]
        assert message == 'Apply failed with 1 conflict: conflict with "modelplane-production" using v1: .data.a'
        core.patch_namespaced_config_map("c", k8s_namespace, body, field_manager="modelplane-dev", force=True, **apply)

    def test_a_persons_edit_is_taken_over_but_another_environments_fields_are_not(
        self, target, k8s_api, k8s_controller, k8s_namespace
    ) -> None:
        target.apply(_spec(k8s_namespace), print)
        apps = KubernetesClient({"api_url": k8s_api.url}).apps()
        edit = {"metadata": {"annotations": {"modelplane.io/revision": "hand-edited"}}}
        apps.patch_namespaced_deployment("churn", k8s_namespace, edit, field_manager="kubectl-edit")
        logs: list[str] = []
        target.apply(_spec(k8s_namespace, revision="r2"), logs.append)
        assert any("taking over fields of Deployment" in line and "kubectl-edit" in line for line in logs)
        live = k8s_controller.get("Deployment", k8s_namespace, "churn")
        assert live["metadata"]["annotations"]["modelplane.io/revision"] == "r2"
        rival = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "churn"}}
        rival["metadata"]["annotations"] = {"modelplane.io/revision": "r9"}
        apps.patch_namespaced_deployment(
            "churn",
            k8s_namespace,
            rival,
            field_manager="modelplane-dev",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        with pytest.raises(PermanentBackendError, match="also managed by modelplane-dev; production will not take"):
            target.apply(_spec(k8s_namespace, revision="r3"), print)

    def test_objects_in_a_namespace_that_does_not_exist_are_refused(self, target) -> None:
        with pytest.raises(PermanentBackendError) as refused:
            target.apply(_spec("no-such-namespace"), print)
        assert 'namespaces "no-such-namespace" not found' in refused.value.message

    def test_the_deploy_service_gives_dev_another_name_in_a_shared_namespace(self, alice, registry) -> None:
        shared = {"target": "kubernetes", "namespace": "models", "image_builder": "local"}
        shared["image_registry"] = "registry.example/models"
        prod, _ = services.environment_ensure(name="prod", **shared)
        dev, _ = services.environment_ensure(name="dev", **shared)
        Deployment.objects.create(environment=prod, model_name="credit-default", name="credit-default")
        revision = services.deployment_create(
            actor=alice, model_name="credit-default", model_version="1", environment="dev"
        )
        assert revision.deployment.name == "credit-default-2"
        with pytest.raises(ConflictError, match="already used by another deployment in models"):
            services.deployment_create(
                actor=alice, model_name="house-prices", model_version="1", environment="dev", name="credit-default"
            )
        assert dev.deployments.count() == 1


class NameTests:
    def test_the_emulator_refuses_a_service_name_starting_with_a_digit_as_the_api_server_does(
        self, target, k8s_namespace
    ) -> None:
        with pytest.raises(PermanentBackendError) as refused:
            target.apply(_spec(k8s_namespace, deployment="2024-churn-model"), print)
        assert refused.value.status == 422
        assert (
            'Service "2024-churn-model" is invalid: metadata.name: Invalid value: "2024-churn-model": a DNS-1035'
            in (refused.value.message)
        )

    def test_the_emulator_keeps_a_deployments_selector_immutable(self, k8s_api, k8s_namespace, target) -> None:
        target.apply(_spec(k8s_namespace), print)
        apps = KubernetesClient({"api_url": k8s_api.url}).apps()
        patch = {"spec": {"selector": {"matchLabels": {"app": "other"}}}}
        with pytest.raises(ApiException) as refused:
            apps.patch_namespaced_deployment("churn", k8s_namespace, patch)
        assert refused.value.status == 422
        assert "spec.selector: Invalid value" in json.loads(refused.value.body)["message"]

    @pytest.mark.parametrize(
        ("model", "name"),
        [
            ("2024_churn_model", "m-2024-churn-model"),
            ("a" * 62 + "_b", "a" * 62),  # truncation leaves no trailing '-'
            ("churn＿model", "churn-model"),  # a fullwidth underscore folds to '_'
            ("main.risk.Credit Default", "main-risk-credit-default"),
            ("模型", "model"),
        ],
    )
    def test_derived_names_are_dns_1035_labels(self, model: str, name: str) -> None:
        assert derive_deployment_name(model) == name
        assert derive_deployment_name(model, taken={name}).endswith("-2")
        assert len(derive_deployment_name(model, taken={name})) <= 63

    def test_a_chosen_name_is_checked_before_any_work(self, alice, registry) -> None:
        services.environment_ensure(name="dev")
        with pytest.raises(ApplicationError, match="DNS-1035 label") as refused:
            services.deployment_create(
                actor=alice, model_name="credit-default", model_version="1", environment="dev", name="2024_churn"
            )
        assert refused.value.code == "invalid_name"
        assert not Deployment.objects.exists()

    def test_the_api_names_the_rule_for_a_bad_name(self, alice, registry, api_client) -> None:
        services.environment_ensure(name="dev")
        api_client.force_authenticate(alice)
        body = {"model": "credit-default", "version": "1", "environment": "dev", "name": "Churn_Model"}
        response = api_client.post(reverse("deployments-api:deployment_list"), body, format="json")
        assert response.status_code == 400, response.content
        assert "DNS-1035" in response.content.decode()
        body["name"] = "churn-model"
        response = api_client.post(reverse("deployments-api:deployment_list"), body, format="json")
        assert response.status_code == 202, response.content
        assert Deployment.objects.get().name == "churn-model"

    def test_the_deploy_form_takes_a_name_and_names_the_rule_when_it_is_bad(self, client, alice, registry) -> None:
        services.environment_ensure(name="dev")
        client.force_login(alice)
        url = reverse("deployments:deployment_create")
        form = {"model": "credit-default", "version": "1", "environment": "dev", "name": "-churn"}
        page = client.post(url, form, follow=True).content.decode()
        assert "is not a valid deployment name: it must be a DNS-1035 label" in page
        assert not Deployment.objects.exists()
        form["name"] = "credit"
        assert client.post(url, form).status_code == 302
        assert Deployment.objects.get().name == "credit"
        page = client.get(reverse("registry:version_detail", kwargs={"name": "credit-default", "version": "1"}))
        assert 'name="name" id="id_name"' in page.content.decode()

    @pytest.mark.parametrize("model", ["2024_churn_model", "risk_" + "x" * 75, "modèle＿crédit"])
    def test_real_team_model_names_deploy_end_to_end(
        self, model, alice, registry, mlflow_client, settings, k8s_api, k8s_controller, k8s_namespace
    ) -> None:
        source = mlflow_client.get_model_version("credit-default", "1")
        mlflow_client.create_registered_model(model)
        mlflow_client.create_model_version(model, source.source, run_id=source.run_id)
        settings.DEPLOY_TARGET_OPTIONS = {**settings.DEPLOY_TARGET_OPTIONS, "kubernetes": {"api_url": k8s_api.url}}
        settings.DEPLOY_READY_TIMEOUT = 10
        services.environment_ensure(
            name="aks",
            target="kubernetes",
            namespace=k8s_namespace,
            image_builder="local",
            image_registry="registry.example/models",
        )
        revision = services.deployment_create(actor=alice, model_name=model, model_version="1", environment="aks")
        name = revision.deployment.name
        # The image is built elsewhere (tests/deploy); here it is already pushed, so the pipeline starts at apply.
        revision.steps.filter(name__in=[StepName.RESOLVE, StepName.BUILD, StepName.PUSH]).update(
            status=StepStatus.SKIPPED
        )
        revision.image = f"registry.example/models/{name}:abc"
        revision.save(update_fields=["image"])
        done = threading.Event()

        def play() -> None:
            while not done.wait(0.05):
                if k8s_controller.get("Deployment", k8s_namespace, name):
                    k8s_controller.complete_rollout(k8s_namespace, name)
                    return

        player = threading.Thread(target=play, daemon=True)
        player.start()
        try:
            assert pipeline.revision_run(revision_id=revision.pk) == "live"
        finally:
            done.set()
        revision.refresh_from_db()
        assert revision.status == RevisionStatus.LIVE, revision.error
        for kind in KINDS:
            assert k8s_controller.get(kind, k8s_namespace, name) is not None, kind
        assert name[0].isalpha() and len(name) <= 63 and not name.endswith("-")


class QuantityTests:
    def test_the_emulator_refuses_a_request_above_its_limit_and_a_malformed_quantity(
        self, target, k8s_namespace
    ) -> None:
        with pytest.raises(PermanentBackendError) as above:
            target.apply(_spec(k8s_namespace, cpu_request="2", cpu_limit="1"), print)
        assert above.value.status == 422
        assert 'resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1' in (
            above.value.message
        )
        with pytest.raises(PermanentBackendError) as malformed:
            target.apply(_spec(k8s_namespace, memory_limit="1 GB"), print)
        assert "quantities must match the regular expression" in malformed.value.message

    @pytest.mark.parametrize(
        ("fields", "field", "fragment"),
        [
            ({"cpu_request": "2"}, "cpu_request", "above its limit 1"),
            ({"memory_request": "2Gi"}, "memory_request", "above its limit 1Gi"),
            ({"memory_limit": "1 GB"}, "memory_limit", "not a Kubernetes quantity"),
            ({"cpu_limit": "one"}, "cpu_limit", "not a Kubernetes quantity"),
        ],
    )
    def test_the_environment_refuses_bad_quantities(self, fields, field, fragment) -> None:
        environment = Environment(name="dev", **fields)
        with pytest.raises(Exception) as refused:
            environment.full_clean()
        assert fragment in " ".join(refused.value.message_dict[field])

    def test_the_environment_admin_shows_the_quantity_errors(self, admin_client) -> None:
        form = {"name": "dev", "order": 0, "target": "local", "image_builder": "none", "replicas": 1}
        form |= {"min_replicas": 1, "max_replicas": 3, "cpu_request": "250m", "cpu_limit": "1"}
        form |= {"memory_request": "2Gi", "memory_limit": "1 GB"}
        response = admin_client.post(reverse("admin:deployments_environment_add"), form)
        assert response.status_code == 200
        assert "&#x27;1 GB&#x27; is not a Kubernetes quantity" in response.content.decode()
        form["memory_limit"] = "1Gi"
        response = admin_client.post(reverse("admin:deployments_environment_add"), form)
        assert "The memory request 2Gi is above its limit 1Gi" in response.content.decode()
        form["memory_request"] = "512Mi"
        assert admin_client.post(reverse("admin:deployments_environment_add"), form).status_code == 302
        assert Environment.objects.get().memory_limit == "1Gi"

    def test_valid_quantities_compare_by_value_and_an_exponent_takes_no_suffix(self) -> None:
        assert "cpu_request" in resources_errors(
            cpu_request="1e3m", cpu_limit="1", memory_request="1", memory_limit="1"
        )
        assert resources_errors(cpu_request="500m", cpu_limit="0.5", memory_request="1024Mi", memory_limit="1Gi") == {}
        assert resources_errors(cpu_request="1e-1", cpu_limit="1", memory_request="1G", memory_limit="1Gi") == {}

    def test_a_deploy_to_a_misconfigured_environment_is_refused_before_any_work(self, alice, registry) -> None:
        environment, _ = services.environment_ensure(name="dev")
        Environment.objects.filter(pk=environment.pk).update(cpu_request="2", cpu_limit="1")  # an old row
        with pytest.raises(ApplicationError, match="dev is misconfigured: The cpu request 2 is above its limit 1"):
            services.deployment_create(actor=alice, model_name="credit-default", model_version="1", environment="dev")
        assert not Deployment.objects.exists()
