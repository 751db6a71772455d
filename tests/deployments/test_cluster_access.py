"""Cluster access (issue 20, item 6): each environment names its cluster, the worker proves who it is there
(a service account token re-read as it rotates, a kubeconfig context with its CA and exec plugin, an Entra token
from workload identity renewed before it expires), and the shipped Role is exactly what a rollout needs.

Clusters are strict emulators (tests/emulators/k8s_auth.py): a token is required, RBAC is read from the Roles and
RoleBindings stored in them, and refusals are the API server's 401 and 403. Entra ID is the OIDC emulator over
HTTPS, spoken to by azure-identity's ``WorkloadIdentityCredential``; the cluster is spoken to by the ``kubernetes``
client. Nothing of ours is patched.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.core.exceptions import ValidationError

from apps.deployments import pipeline, services
from apps.deployments.choices import RevisionStatus, StepName
from apps.deployments.clusters import Cluster
from apps.deployments.kube import ClusterAccessError, status_of
from apps.deployments.models import Deployment, Revision, RevisionStep
from apps.deployments.targets.base import ServingSpec
from apps.deployments.targets.kubernetes import KubernetesTarget
from tests.emulators.k8s import Controller, EmulatorThread
from tests.emulators.k8s_auth import SERVICE_ACCOUNT_ISSUER
from tests.emulators.k8s_controllers import DeploymentController
from tests.emulators.oidc import Federation, OidcProvider

ROOT = Path(__file__).resolve().parents[2]
RBAC_YAML = ROOT / "deploy" / "kubernetes" / "base" / "rbac-targets.yaml"
WORKER = "system:serviceaccount:modelplane:modelplane-worker"
NAMESPACE = "models"
IMAGE = "modelplaneacr.azurecr.io/models/credit-default:3f2a"
TENANT, CLIENT_ID, OBJECT_ID = "tenant-1", "client-1", "11111111-2222-3333-4444-555555555555"


class Logs(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def _spec(environment: str, revision: str = "r1") -> ServingSpec:
    return ServingSpec(
        deployment="credit-default",
        namespace=NAMESPACE,
        environment=environment,
        revision=revision,
        model_name="credit-default",
        model_version=revision.removeprefix("r"),
        model_uri=f"models:/credit-default/{revision.removeprefix('r')}",
        image=IMAGE,
        image_digest="sha256:3f2a",
    )


def _shipped(name: str) -> tuple[dict, dict]:
    """The Role and RoleBinding named ``name`` in deploy/kubernetes/base/rbac-targets.yaml."""
    docs = [doc for doc in yaml.safe_load_all(RBAC_YAML.read_text()) if doc]
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == name)
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == name)
    return role, binding


def _grants(role: dict) -> set[tuple[str, str, str]]:
    return {
        (verb, group, resource)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def grant_deployer(controller: Controller, *, subjects: list[dict] | None = None, drop: set | None = None) -> dict:
    """Install the shipped deployer Role and RoleBinding in the test namespace, as the file says to for every target
    namespace; ``drop`` removes (verb, group, resource) grants, ``subjects`` replaces who is bound."""
    role, binding = (copy.deepcopy(obj) for obj in _shipped("modelplane-deployer"))
    role["metadata"]["namespace"] = binding["metadata"]["namespace"] = NAMESPACE
    if drop:
        rules = []
        for verb, group, resource in sorted(_grants(role) - drop):
            rules.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
        role["rules"] = rules
    if subjects is not None:
        binding["subjects"] = subjects
    controller.create(role)
    controller.create(binding)
    return role


@pytest.fixture
def clusters(tmp_path):
    """Start strict clusters (``clusters("a", tls=True)``), each with the namespace ``models``."""
    started: list[EmulatorThread] = []

    def start(name: str, *, tls: bool = False) -> tuple[EmulatorThread, Controller]:
        directory = tmp_path / f"cluster-{name}"
        directory.mkdir()
        runner = EmulatorThread(strict=True, tls_dir=directory if tls else None).start()
        started.append(runner)
        controller = Controller(runner)
        controller.create_namespace(NAMESPACE)
        return runner, controller

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture
def entra(tmp_path, monkeypatch):
    """Microsoft Entra ID over HTTPS; azure-identity trusts its certificate the way requests is told to."""
    directory = tmp_path / "entra"
    directory.mkdir()
    with OidcProvider(certificate_dir=directory) as provider:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", provider.ca)
        yield provider


def _token_file(tmp_path: Path, name: str, token: str) -> Path:
    path = tmp_path / name
    path.write_text(token)
    return path


def _target(cluster: Cluster | str, **options) -> KubernetesTarget:
    return KubernetesTarget(
        cluster=cluster,
        poll_interval_seconds=0.02,
        unschedulable_grace_seconds=0,
        image_pull_grace_seconds=0,
        **options,
    )


def _workload_identity(runner: EmulatorThread, controller: Controller, entra: OidcProvider, worker_cluster, tmp_path):
    """Cluster ``runner`` accepts Entra tokens and binds the identity's object id; the worker's own cluster
    (``worker_cluster``) issues the federated service account token that Entra exchanges."""
    runner.emulator.auth.trust_entra(entra.key, entra.entra_issuer(TENANT))
    grant_deployer(controller, subjects=[{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": OBJECT_ID}])
    federated = worker_cluster.emulator.auth.service_account_token(
        "modelplane", "modelplane-worker", audience="api://AzureADTokenExchange"
    )
    entra.federate(
        CLIENT_ID,
        Federation(
            issuer=SERVICE_ACCOUNT_ISSUER, subject=WORKER, key=worker_cluster.emulator.auth.key, object_id=OBJECT_ID
        ),
    )
    return {
        "auth": "workload_identity",
        "server": runner.url,
        "ca_data": base64.b64encode(Path(runner.ca).read_bytes()).decode(),
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "federated_token_file": str(_token_file(tmp_path, "azure-identity-token", federated)),
        "authority_host": entra.issuer,
    }


# ---------------------------------------------------------------------------------------------- RBAC
class ShippedRoleTests:
    def test_the_shipped_role_allows_everything_a_rollout_does_and_nothing_more(self, clusters, tmp_path) -> None:
        runner, controller = clusters("a")
        role = grant_deployer(controller)
        token = runner.emulator.auth.service_account_token("modelplane", "modelplane-worker")
        target = _target(
            Cluster(name="a", auth="token", server=runner.url, token_file=str(_token_file(tmp_path, "t", token)))
        )
        spec = _spec("staging")

        target.apply(spec, Logs())  # creates the four objects (apply, and create since they are new)
        pod = controller.create_pod(
            NAMESPACE,
            spec.deployment,
            phase="Running",
            restart_count=3,
            container_state={"waiting": {"reason": "CrashLoopBackOff"}},
            last_state={"terminated": {"reason": "Error", "exitCode": 1}},
        )
        controller.set_log(NAMESPACE, pod["metadata"]["name"], "scoring-server", "ModelLoadError: boom")
        controller.add_event(
            NAMESPACE, "Pod", pod["metadata"]["name"], "BackOff", "Back-off restarting failed container"
        )
        failed = target.wait_ready(spec, Logs(), timeout_seconds=5)  # pods, their events and the crashed log
        second = _spec("staging", "r2")
        target.apply(second, Logs())  # patches what exists
        controller.complete_rollout(NAMESPACE, spec.deployment)
        ready = target.wait_ready(second, Logs(), timeout_seconds=5)
        target.delete(second, Logs())

        assert not failed.ok and "ModelLoadError: boom" in failed.message
        assert ready.ok
        assert controller.get("Deployment", NAMESPACE, spec.deployment) is None
        # Every call of the rollout was allowed by the Role (else it would have raised), and every grant was used.
        assert runner.emulator.rbac.granted(WORKER) == _grants(role)

    def test_a_verb_the_role_lacks_fails_at_once_with_the_api_servers_message(self, clusters, tmp_path) -> None:
        runner, controller = clusters("a")
        grant_deployer(controller, drop={("create", "", "services")})
        token = runner.emulator.auth.service_account_token("modelplane", "modelplane-worker")
        target = _target(
            Cluster(
                name="staging-aks", auth="token", server=runner.url, token_file=str(_token_file(tmp_path, "t", token))
            )
        )

        with pytest.raises(ClusterAccessError) as refused:
            target.apply(_spec("staging"), Logs())

        message = refused.value.message
        assert status_of(refused.value) == 403
        assert message.startswith(f"Environment staging: Kubernetes cluster staging-aks ({runner.url}) refused to ")
        assert (
            f'services "credit-default" is forbidden: User "{WORKER}" cannot create resource "services" '
            f'in API group "" in the namespace "{NAMESPACE}"'
        ) in message
        assert token not in message

    def test_refusals_are_the_api_servers_status_bodies(self, clusters) -> None:
        runner, controller = clusters("a")
        grant_deployer(controller)
        token = runner.emulator.auth.service_account_token("modelplane", "modelplane-worker")
        expired = runner.emulator.auth.service_account_token("modelplane", "modelplane-worker", lifetime=-1)
        secrets_url = f"{runner.url}/api/v1/namespaces/{NAMESPACE}/secrets"

        anonymous = requests.get(secrets_url, timeout=5)
        stale = requests.get(secrets_url, headers={"Authorization": f"Bearer {expired}"}, timeout=5)
        unknown = requests.get(secrets_url, headers={"Authorization": "Bearer made-up"}, timeout=5)
        forbidden = requests.get(secrets_url, headers={"Authorization": f"Bearer {token}"}, timeout=5)

        unauthorized = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
        for response in (anonymous, stale, unknown):
            assert (response.status_code, response.json()) == (401, unauthorized)
        assert forbidden.status_code == 403
        assert forbidden.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f'secrets is forbidden: User "{WORKER}" cannot list resource "secrets" in API group "" '
            f'in the namespace "{NAMESPACE}"',
            "reason": "Forbidden",
            "details": {"group": "", "kind": "secrets"},
            "code": 403,
        }


# ---------------------------------------------------------------------------------------------- credentials
class TokenRotationTests:
    def test_a_rotated_service_account_token_is_read_again_at_once(self, clusters, tmp_path) -> None:
        runner, controller = clusters("a", tls=True)
        grant_deployer(controller)
        auth = runner.emulator.auth
        groups = ("system:serviceaccounts", "system:serviceaccounts:modelplane")
        token_file = _token_file(tmp_path, "token", auth.add_token("sa-token-one", WORKER, groups))
        cluster = Cluster(name="a", auth="in_cluster", server=runner.url, token_file=str(token_file), ca_file=runner.ca)
        target = _target(cluster)
        spec = _spec("staging")
        target.apply(spec, Logs())

        # The kubelet writes the new token next to the old one and swaps it in; the old one then expires.
        rotated = tmp_path / "token.new"
        rotated.write_text(auth.add_token("sa-token-two", WORKER, groups))
        os.replace(rotated, token_file)
        del auth.static["sa-token-one"]
        target.delete(spec, Logs())

        assert controller.get("Service", NAMESPACE, spec.deployment) is None
        assert controller.authorizations()[-1] == "Bearer sa-token-two"
        assert auth.refused == []

    def test_an_entra_token_is_renewed_when_it_expires_and_the_client_keeps_working(
        self, clusters, entra, tmp_path
    ) -> None:
        worker_cluster, _ = clusters("control-plane")
        runner, controller = clusters("production", tls=True)
        definition = _workload_identity(runner, controller, entra, worker_cluster, tmp_path)
        entra.access_token_lifetime = 5  # Entra's are about an hour; the client must not care
        target = _target(Cluster(name="production-aks", **definition))
        spec = _spec("production")

        target.apply(spec, Logs())
        first = entra.issued[-1]
        while time.time() <= first["exp"] + 0.5:  # let the first token expire
            time.sleep(0.2)
        old_token = controller.authorizations()[-1]
        stale = requests.get(
            f"{runner.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
            headers={"Authorization": old_token},
            verify=runner.ca,
            timeout=5,
        )
        target.delete(spec, Logs())

        assert stale.status_code == 401
        assert controller.get("Deployment", NAMESPACE, spec.deployment) is None
        assert len(entra.issued) >= 2 and entra.issued[-1]["exp"] > first["exp"]
        assert {claims["aud"] for claims in entra.issued} == {"6dae42f8-4368-4678-94ff-3960e28e3630"}
        assert controller.authorizations()[-1] != old_token
        assert "expired" in runner.emulator.auth.refused[-1:]  # only the test's own probe was refused
        assert runner.emulator.auth.refused.count("expired") == 1
        grants = [form for form in entra.token_requests if form.get("client_assertion_type")]
        assert {form["grant_type"] for form in grants} == {"client_credentials"}
        assert {form["scope"] for form in grants} == {"6dae42f8-4368-4678-94ff-3960e28e3630/.default"}

    def test_an_identity_entra_does_not_federate_fails_naming_the_cluster(self, clusters, entra, tmp_path) -> None:
        worker_cluster, _ = clusters("control-plane")
        runner, controller = clusters("production", tls=True)
        definition = _workload_identity(runner, controller, entra, worker_cluster, tmp_path)
        definition["client_id"] = "client-nobody-federated"

        with pytest.raises(ClusterAccessError) as refused:
            _target(Cluster(name="production-aks", **definition)).apply(_spec("production"), Logs())

        assert refused.value.message.startswith("Environment production: Microsoft Entra ID refused a token for ")
        assert "production-aks" in refused.value.message and "AADSTS700016" in refused.value.message
        assert controller.requests() == []  # no anonymous request went out


# ---------------------------------------------------------------------------------------------- kubeconfig
def _kubeconfig(tmp_path: Path, runner: EmulatorThread, user: dict, *, name: str = "kubeconfig") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "aks-prod",
                "cluster": {
                    "server": runner.url,
                    "certificate-authority-data": base64.b64encode(Path(runner.ca).read_bytes()).decode(),
                },
            },
            {"name": "elsewhere", "cluster": {"server": "https://aks.example.invalid:443"}},
        ],
        "users": [{"name": "entra-user", "user": user}, {"name": "other", "user": {"token": "not-this-one"}}],
        "contexts": [
            {"name": "aks-prod", "context": {"cluster": "aks-prod", "user": "entra-user"}},
            {"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "other"}},
        ],
        "current-context": "elsewhere",
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _kubelogin(directory: Path, body: str) -> Path:
    """A stand-in for kubelogin: an exec credential plugin answering what ``body`` prints or exits with."""
    directory.mkdir(exist_ok=True)
    script = directory / "kubelogin"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


EXEC_USER = {
    "exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "kubelogin",
        "args": ["get-token", "--login", "workloadidentity", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"],
        "interactiveMode": "Never",
    }
}


class KubeconfigTests:
    def test_a_kubeconfig_context_with_inline_ca_and_an_exec_plugin(self, clusters, tmp_path, monkeypatch) -> None:
        runner, controller = clusters("production", tls=True)
        grant_deployer(
            controller, subjects=[{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": OBJECT_ID}]
        )
        runner.emulator.auth.add_token("entra-token-from-kubelogin", OBJECT_ID)
        runs = tmp_path / "runs"
        credential = {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "status": {"token": "entra-token-from-kubelogin", "expirationTimestamp": "2099-01-01T00:00:00Z"},
        }
        bin_dir = tmp_path / "bin"
        _kubelogin(bin_dir, f"echo run >> {runs}\necho '{json.dumps(credential)}'")
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        path = _kubeconfig(tmp_path, runner, EXEC_USER)
        target = _target(Cluster(name="production-aks", auth="kubeconfig", kubeconfig=str(path), context="aks-prod"))

        target.apply(_spec("production"), Logs())
        target.delete(_spec("production"), Logs())

        assert set(controller.authorizations()) == {"Bearer entra-token-from-kubelogin"}
        assert runs.read_text().count("run") == 1  # the token is kept until it nears its expiry

    def test_a_missing_kubelogin_fails_loudly_instead_of_going_anonymous(self, clusters, tmp_path, monkeypatch) -> None:
        runner, controller = clusters("production", tls=True)
        monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
        path = _kubeconfig(tmp_path, runner, EXEC_USER)
        target = _target(Cluster(name="production-aks", auth="kubeconfig", kubeconfig=str(path), context="aks-prod"))

        with pytest.raises(ClusterAccessError) as refused:
            target.apply(_spec("production"), Logs())

        message = refused.value.message
        assert message.startswith("Environment production: ")
        assert "exec plugin 'kubelogin', which is not installed where the worker runs" in message
        assert "production-aks" in message
        assert controller.requests() == []

    def test_a_failing_kubelogin_says_what_it_said(self, clusters, tmp_path, monkeypatch) -> None:
        runner, controller = clusters("production", tls=True)
        bin_dir = tmp_path / "bin"
        _kubelogin(bin_dir, "echo 'AADSTS700024: Client assertion is not within its valid time range.' >&2\nexit 1")
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        path = _kubeconfig(tmp_path, runner, EXEC_USER)

        with pytest.raises(
            ClusterAccessError, match="exec plugin 'kubelogin' of kubeconfig user 'entra-user'"
        ) as refused:
            _target(Cluster(name="production-aks", auth="kubeconfig", kubeconfig=str(path), context="aks-prod")).apply(
                _spec("production"), Logs()
            )

        assert "AADSTS700024" in refused.value.message
        assert controller.requests() == []

    def test_an_unknown_context_is_named(self, clusters, tmp_path) -> None:
        runner, _ = clusters("production", tls=True)
        path = _kubeconfig(tmp_path, runner, {"token": "x"})

        with pytest.raises(ClusterAccessError, match="has no context 'aks-staging' \\(it has: aks-prod, elsewhere\\)"):
            _target(Cluster(name="p", auth="kubeconfig", kubeconfig=str(path), context="aks-staging")).apply(
                _spec("production"), Logs()
            )


# ---------------------------------------------------------------------------------------------- two clusters
def _queue(environment, *, image: str = IMAGE) -> Revision:
    deployment = Deployment.objects.create(environment=environment, model_name="credit-default", name="credit-default")
    revision = Revision.objects.create(
        deployment=deployment, number=1, model_version="3", image=image, config=services._config(environment)
    )
    steps = [StepName.APPLY, StepName.ROLLOUT, StepName.SMOKE_TEST, StepName.LIVE]
    RevisionStep.objects.bulk_create(RevisionStep(revision=revision, name=n, position=i) for i, n in enumerate(steps))
    return revision


@pytest.mark.django_db
class TwoClusterTests:
    def test_staging_and_production_deploy_each_to_its_own_cluster(self, clusters, entra, tmp_path, settings) -> None:
        staging, staging_controller = clusters("staging")
        production, production_controller = clusters("production", tls=True)
        grant_deployer(staging_controller)
        token = staging.emulator.auth.service_account_token("modelplane", "modelplane-worker")
        settings.KUBERNETES_CLUSTERS = {
            "staging-aks": {
                "auth": "token",
                "server": staging.url,
                "token_file": str(_token_file(tmp_path, "sa", token)),
            },
            "production-aks": _workload_identity(production, production_controller, entra, staging, tmp_path),
        }
        settings.DEPLOY_TARGET_OPTIONS = {
            **settings.DEPLOY_TARGET_OPTIONS,
            "kubernetes": {"endpoint_url_template": "http://{deployment}.{namespace}", "poll_interval_seconds": 0.05},
        }
        settings.DEPLOY_READY_TIMEOUT = 30
        common = {
            "target": "kubernetes",
            "namespace": NAMESPACE,
            "image_builder": "acr",
            "image_registry": "modelplaneacr.azurecr.io/models",
        }
        env_staging, _ = services.environment_ensure(name="staging", cluster="staging-aks", **common)
        env_production, _ = services.environment_ensure(
            name="production", cluster="production-aks", gated=True, **common
        )
        controllers = [
            DeploymentController(staging, NAMESPACE).start(),
            DeploymentController(production, NAMESPACE).start(),
        ]
        try:
            outcomes = [pipeline.revision_run(revision_id=_queue(env).pk) for env in (env_staging, env_production)]
        finally:
            for controller in controllers:
                controller.stop()

        assert outcomes == ["live", "live"], [r.error for r in Revision.objects.all()]
        in_staging = staging_controller.get("Deployment", NAMESPACE, "credit-default")
        in_production = production_controller.get("Deployment", NAMESPACE, "credit-default")
        assert in_staging["metadata"]["labels"]["modelplane.io/environment"] == "staging"
        assert in_production["metadata"]["labels"]["modelplane.io/environment"] == "production"
        for controller, environment in ((staging_controller, "staging"), (production_controller, "production")):
            for kind in ("Service", "PodDisruptionBudget", "Deployment", "HorizontalPodAutoscaler"):
                objects = controller.list(kind, NAMESPACE)
                assert [o["metadata"]["labels"]["modelplane.io/environment"] for o in objects] == [environment], kind
        assert staging.emulator.auth.seen and set(staging.emulator.auth.seen) == {WORKER}
        assert production.emulator.auth.seen and set(production.emulator.auth.seen) == {OBJECT_ID}
        assert Revision.objects.get(deployment__environment=env_production).config["cluster"] == "production-aks"

    def test_a_401_fails_the_revision_naming_environment_and_cluster_without_a_retry(
        self, clusters, tmp_path, settings
    ) -> None:
        staging, staging_controller = clusters("staging")
        grant_deployer(staging_controller)
        token_file = _token_file(tmp_path, "sa", "a-token-of-another-cluster")
        settings.KUBERNETES_CLUSTERS = {
            "staging-aks": {"auth": "token", "server": staging.url, "token_file": str(token_file)}
        }
        environment, _ = services.environment_ensure(
            name="staging",
            cluster="staging-aks",
            target="kubernetes",
            namespace=NAMESPACE,
            image_builder="acr",
            image_registry="modelplaneacr.azurecr.io/models",
        )
        revision = _queue(environment)

        outcome = pipeline.revision_run(revision_id=revision.pk)

        revision.refresh_from_db()
        assert outcome == "failed at apply"
        assert revision.status == RevisionStatus.FAILED and revision.attempts == 1
        assert revision.error.startswith(
            f"Apply failed: Environment staging: Kubernetes cluster staging-aks ({staging.url}) did not accept a "
            "bearer token (401 Unauthorized)"
        )
        assert "a-token-of-another-cluster" not in revision.error
        assert str(token_file) in revision.error  # where to look


# ---------------------------------------------------------------------------------------------- configuration
@pytest.mark.django_db
class EnvironmentClusterTests:
    CLUSTERS = {
        "staging-aks": {"auth": "in_cluster"},
        "production-aks": {"auth": "token", "server": "https://aks.example:443", "token": "a-static-secret-token"},
    }

    def test_an_unknown_cluster_is_refused_with_the_names_the_settings_define(self, settings) -> None:
        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        with pytest.raises(ValidationError) as refused:
            services.environment_ensure(
                name="prod",
                target="kubernetes",
                cluster="prod-aks",
                namespace="models",
                image_builder="acr",
                image_registry="r.example/m",
            )
        assert refused.value.message_dict["cluster"] == [
            "Unknown cluster 'prod-aks'. The settings define: staging-aks, production-aks."
        ]

    def test_a_local_environment_has_no_cluster(self, settings) -> None:
        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        with pytest.raises(ValidationError) as refused:
            services.environment_ensure(name="dev", target="local", cluster="staging-aks")
        assert refused.value.message_dict["cluster"] == ["Only a Kubernetes environment has a cluster."]

    def test_the_admin_form_offers_the_cluster_names_and_refuses_others(
        self, settings, client, django_user_model
    ) -> None:
        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
        client.force_login(admin)
        page = client.get("/admin/deployments/environment/add/")
        fields = {
            "name": "prod",
            "order": 0,
            "target": "kubernetes",
            "cluster": "prod-aks",
            "namespace": "models",
            "image_builder": "acr",
            "image_registry": "r.example/m",
            "replicas": 1,
            "min_replicas": 1,
            "max_replicas": 3,
            "cpu_request": "250m",
            "cpu_limit": "1",
            "memory_request": "512Mi",
            "memory_limit": "1Gi",
        }
        refused = client.post("/admin/deployments/environment/add/", fields)
        accepted = client.post("/admin/deployments/environment/add/", {**fields, "cluster": "production-aks"})

        html = page.content.decode()
        assert '<option value="staging-aks">' in html and '<option value="production-aks">' in html
        assert "a-static-secret-token" not in html and "aks.example" not in html
        assert refused.status_code == 200 and "prod-aks" in refused.content.decode()
        assert accepted.status_code == 302
        assert services.Environment.objects.get(name="prod").cluster == "production-aks"

    def test_the_api_names_the_cluster_and_never_its_credentials(self, settings, api_client) -> None:
        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        services.environment_ensure(
            name="prod",
            target="kubernetes",
            cluster="production-aks",
            namespace="models",
            image_builder="acr",
            image_registry="r.example/m",
        )
        response = api_client.get("/api/v1/environments/")
        assert response.status_code == 200
        rows = response.json()["results"] if isinstance(response.json(), dict) else response.json()
        assert [row["cluster"] for row in rows if row["name"] == "prod"] == ["production-aks"]
        assert "a-static-secret-token" not in response.content.decode()

    def test_a_clusters_token_is_redacted_from_logs_and_not_in_its_repr(self, settings) -> None:
        from controlplane.logging_redaction import secret_values

        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        assert "a-static-secret-token" in secret_values(settings)
        cluster = Cluster(name="p", auth="token", server="https://aks.example", token="a-static-secret-token")
        assert "a-static-secret-token" not in repr(cluster)

    def test_a_cluster_removed_from_the_settings_fails_the_deploy_not_the_worker(self, settings) -> None:
        settings.KUBERNETES_CLUSTERS = self.CLUSTERS
        environment, _ = services.environment_ensure(
            name="prod",
            target="kubernetes",
            cluster="production-aks",
            namespace="models",
            image_builder="acr",
            image_registry="r.example/m",
        )
        settings.KUBERNETES_CLUSTERS = {}
        revision = _queue(environment)

        assert pipeline.revision_run(revision_id=revision.pk) == "failed at apply"
        revision.refresh_from_db()
        assert "Unknown cluster 'production-aks'" in revision.error


def test_two_emulators_do_not_share_tokens(clusters) -> None:
    one, _ = clusters("one")
    two, _ = clusters("two")
    token = one.emulator.auth.service_account_token("modelplane", "modelplane-worker")
    answer = requests.get(
        f"{two.url}/api/v1/namespaces/{NAMESPACE}/pods", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert answer.status_code == 401


def test_a_misconfigured_cluster_is_reported_by_the_system_checks(settings) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.KUBERNETES_CLUSTERS = {"production-aks": {"auth": "workload_identity", "sever": "https://typo"}}
    with pytest.raises(SystemCheckError) as failed:
        call_command("check")
    assert "cluster 'production-aks': unknown setting 'sever'" in str(failed.value)
    assert "cluster 'production-aks': auth workload_identity needs the API server's URL (server)" in str(failed.value)


@pytest.mark.django_db
def test_a_name_is_taken_per_namespace_of_one_cluster_not_across_clusters(settings) -> None:
    settings.KUBERNETES_CLUSTERS = EnvironmentClusterTests.CLUSTERS
    common = {"target": "kubernetes", "namespace": NAMESPACE, "image_builder": "acr", "image_registry": "r.example/m"}
    staging, _ = services.environment_ensure(name="staging", cluster="staging-aks", **common)
    production, _ = services.environment_ensure(name="production", cluster="production-aks", **common)
    qa, _ = services.environment_ensure(name="qa", cluster="staging-aks", **common)
    Deployment.objects.create(environment=staging, model_name="credit-default", name="credit-default")

    assert services._resource_name("credit-default", production, "") == "credit-default"  # another cluster
    assert services._resource_name("credit-default", qa, "") == "credit-default-2"  # staging's namespace
