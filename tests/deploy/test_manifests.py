"""deploy/kubernetes: every overlay renders, validates against the Kubernetes OpenAPI schemas (offline, strict),
applies to the Kubernetes API emulator through the official client, and keeps the security properties the
control plane promises (non-root, no privilege escalation, read-only root, resources, least RBAC, no secrets).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.utils
import kubernetes_validate
import pytest
import requests

from apps.deployments.builders import BuildRequest
from apps.deployments.builders.buildah import render_pod
from apps.deployments.targets.kubernetes import KubernetesTarget
from tests.deploy.conftest import KUBERNETES_DIR, OVERLAYS, containers, object_key, pod_specs, render, rendered
from tests.emulators.k8s import EmulatorThread

APP_NAMESPACE = "modelplane"
TARGET_NAMESPACE = "modelplane-models"
BUILD_NAMESPACE = "modelplane-builds"
APP_COMPONENTS = {"web", "worker", "beat", "migrate"}
# kind -> (API group, plural) of what the worker manages in a target namespace; kept in step with the code below.
SCORING_KINDS = {
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
}
PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Service": "services",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "Job": "jobs",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL|DATABASE_URL|REDIS_URL|BROKER_URL", re.I)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def app_workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """component -> the Deployment or Job running the control plane's image."""
    return {
        obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj
        for obj in objects
        if obj["kind"] in ("Deployment", "Job")
        and obj["metadata"]["labels"].get("app.kubernetes.io/name") == "modelplane"
    }


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    return by_kind(objects, "ConfigMap")["modelplane-config"]["data"]


# ---------------------------------------------------------------------------------------------- rendering
class TestRendering:
    def test_base_and_overlays_render_every_piece(self) -> None:
        base = render(KUBERNETES_DIR / "base")
        for overlay in OVERLAYS:
            objects = rendered(overlay)
            assert {object_key(obj) for obj in base} <= {object_key(obj) for obj in objects}
            assert set(app_workloads(objects)) == APP_COMPONENTS
            kinds = {obj["kind"] for obj in objects}
            assert {
                "Service",
                "Ingress",
                "ConfigMap",
                "ServiceAccount",
                "PodDisruptionBudget",
                "NetworkPolicy",
            } <= kinds
            assert {"Role", "RoleBinding"} <= kinds

    def test_overlays_set_the_image_everywhere(self, objects: list[dict[str, Any]], overlay: str) -> None:
        images = {c["image"] for obj in objects for c in containers(obj) if c["name"] not in ("postgres", "redis")}
        expected = {"dev": "localhost:5000/modelplane:dev", "aks": "modelplaneacr.azurecr.io/modelplane:0.1.0"}
        assert images == {expected[overlay]}

    def test_dev_runs_postgres_and_redis_in_the_cluster_and_aks_uses_external_services(self) -> None:
        dev, aks = rendered("dev"), rendered("aks")
        assert set(by_kind(dev, "StatefulSet")) == {"postgres", "redis"}
        assert config(dev)["REDIS_URL"] == "redis://redis.modelplane.svc.cluster.local:6379/0"
        assert not by_kind(aks, "StatefulSet")
        # aks: the database and Redis URLs carry credentials, so they come from the Secret only.
        assert "REDIS_URL" not in config(aks) and "DATABASE_URL" not in config(aks)
        assert config(aks)["MLFLOW_TRACKING_URI"] == "databricks"
        assert config(aks)["MLFLOW_REGISTRY_URI"] == "databricks-uc"
        assert by_kind(aks, "Ingress")["modelplane-web"]["spec"]["ingressClassName"] == (
            "webapprouting.kubernetes.azure.com"
        )
        assert "tls" not in by_kind(dev, "Ingress")["modelplane-web"]["spec"]


# ---------------------------------------------------------------------------------------------- validation
class TestValidation:
    def test_every_manifest_is_valid_against_the_openapi_schemas(self, objects: list[dict[str, Any]]) -> None:
        version = kubernetes_validate.utils.latest_version()
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)

    def test_a_wrong_field_is_caught(self, objects: list[dict[str, Any]]) -> None:
        web = app_workloads(objects)["web"]
        web["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(web, kubernetes_validate.utils.latest_version(), strict=True)


class TestApplyToTheEmulator:
    @pytest.mark.parametrize("name", OVERLAYS)
    def test_every_object_is_created_and_reads_back(self, cluster: EmulatorThread, name: str) -> None:
        objects = rendered(name)
        client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=cluster.url))
        for obj in objects:
            key = object_key(obj)
            if _read(cluster, obj) is not None:  # the other overlay created it: start over
                _delete(cluster, obj)
            kubernetes.utils.create_from_dict(client, obj)
            stored = _read(cluster, obj)
            assert stored is not None, key
            assert stored["metadata"]["uid"] and stored["metadata"]["resourceVersion"]
            assert stored.get("spec", stored.get("data", stored.get("rules"))) == obj.get(
                "spec", obj.get("data", obj.get("rules"))
            ), key
        # What the rest of the suite's emulator-backed assertions rely on, listed as a cluster would.
        listed = requests.get(f"{cluster.url}/apis/apps/v1/namespaces/{APP_NAMESPACE}/deployments", timeout=10).json()
        assert {item["metadata"]["name"] for item in listed["items"]} >= {
            "modelplane-web",
            "modelplane-worker",
            "modelplane-beat",
        }


def _url(cluster: EmulatorThread, obj: dict[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = f"{cluster.url}/api/{api_version}" if "/" not in api_version else f"{cluster.url}/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace and kind != "Namespace" else ""
    return f"{prefix}{scope}/{PLURALS[kind]}/{obj['metadata']['name']}"


def _read(cluster: EmulatorThread, obj: dict[str, Any]) -> dict[str, Any] | None:
    answer = requests.get(_url(cluster, obj), timeout=10)
    return answer.json() if answer.status_code == 200 else None


def _delete(cluster: EmulatorThread, obj: dict[str, Any]) -> None:
    assert requests.delete(_url(cluster, obj), timeout=10).status_code == 200


# ---------------------------------------------------------------------------------------------- workloads
class TestWorkloads:
    def test_pods_run_as_non_root_without_privileges_on_a_read_only_root(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            for spec in pod_specs(obj):
                pod = spec.get("securityContext") or {}
                assert pod.get("runAsNonRoot") is True, obj["metadata"]["name"]
                assert pod.get("runAsUser", 0) > 0
                assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}
                assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
                for volume in spec.get("volumes", []):
                    assert "hostPath" not in volume
            for container in containers(obj):
                where = f"{obj['metadata']['name']}/{container['name']}"
                security = container.get("securityContext") or {}
                assert security.get("allowPrivilegeEscalation") is False, where
                assert security.get("readOnlyRootFilesystem") is True, where
                assert security.get("capabilities") == {"drop": ["ALL"]}, where
                assert not security.get("privileged"), where
                assert not security.get("runAsUser") == 0, where

    def test_every_container_has_requests_and_limits(self, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            for container in containers(obj):
                resources = container.get("resources") or {}
                for which in ("requests", "limits"):
                    assert set(resources.get(which) or {}) >= {"cpu", "memory"}, (obj["metadata"]["name"], which)

    def test_the_app_pods_use_workload_identity_and_the_config(self, objects: list[dict[str, Any]]) -> None:
        accounts = by_kind(objects, "ServiceAccount")
        for component, workload in app_workloads(objects).items():
            template = workload["spec"]["template"]
            assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true", component
            account = accounts[template["spec"]["serviceAccountName"]]
            assert re.fullmatch(
                r"[0-9a-f-]{36}", account["metadata"]["annotations"]["azure.workload.identity/client-id"]
            )
            for container in containers(workload):
                refs = container["envFrom"]
                assert {"configMapRef": {"name": "modelplane-config"}} in refs
                assert {"secretRef": {"name": "modelplane-secrets"}} in refs
        # Only the worker talks to the Kubernetes API: nobody else gets a token mounted.
        for component, workload in app_workloads(objects).items():
            spec = workload["spec"]["template"]["spec"]
            assert spec["automountServiceAccountToken"] is (component == "worker"), component

    def test_roles_probes_and_rollout_strategies(self, objects: list[dict[str, Any]]) -> None:
        workloads = app_workloads(objects)
        web = workloads["web"]["spec"]["template"]["spec"]["containers"][0]
        assert web["args"] == ["web"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert web[probe]["httpGet"]["path"] == "/healthz"
            assert web[probe]["httpGet"]["port"] == "http"
        assert workloads["worker"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
        assert "livenessProbe" in workloads["worker"]["spec"]["template"]["spec"]["containers"][0]
        beat = workloads["beat"]["spec"]
        assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}
        assert beat["template"]["spec"]["containers"][0]["args"] == ["beat"]
        assert workloads["migrate"]["kind"] == "Job"
        assert workloads["migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
        for component in ("web", "worker"):
            init = workloads[component]["spec"]["template"]["spec"]["initContainers"][0]
            assert "migrate --check" in init["command"][-1]
        budgets = {
            pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
            for pdb in by_kind(objects, "PodDisruptionBudget").values()
        }
        assert budgets == {"web", "worker"}
        service = by_kind(objects, "Service")["modelplane-web"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        ingress = by_kind(objects, "Ingress")["modelplane-web"]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "modelplane-web", "port": {"name": "http"}}

    def test_the_worker_consumes_the_queue_rollouts_are_routed_to(self, objects: list[dict[str, Any]]) -> None:
        data = config(objects)
        assert data["CELERY_DEPLOY_QUEUE"] in data["CELERY_WORKER_QUEUES"].split(",")
        assert "celery" in data["CELERY_WORKER_QUEUES"].split(",")

    def test_the_probe_gets_200_with_the_overlays_settings(self, objects, settings, client) -> None:
        """The kubelet sends the pod IP as Host and plain HTTP: the probe headers keep Django from refusing it
        (ALLOWED_HOSTS) or redirecting it to https (SECURE_SSL_REDIRECT)."""
        data = config(objects)
        settings.ALLOWED_HOSTS = data["DJANGO_ALLOWED_HOSTS"].split(",")
        settings.SECURE_SSL_REDIRECT = data["DJANGO_SECURE_SSL_REDIRECT"] == "true"
        if data["DJANGO_BEHIND_TLS_PROXY"] == "true":
            settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        probe = app_workloads(objects)["web"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]
        headers = {h["name"]: h["value"] for h in probe["httpHeaders"]}
        assert client.get(probe["path"], headers=headers).status_code == 200
        assert client.get(probe["path"], headers={"Host": "10.244.0.17:8000"}).status_code == 400


# ---------------------------------------------------------------------------------------------- secrets
class TestNoLiteralSecrets:
    def test_no_secret_objects_and_no_secret_values(self, objects: list[dict[str, Any]]) -> None:
        assert not [obj for obj in objects if obj["kind"] == "Secret"]
        for key, value in config(objects).items():
            credentials = re.search(r"://[^/@\s]*:[^/@\s]*@", value)
            assert not credentials, f"{key} carries credentials"
            if SECRET_NAME.search(key):
                assert key == "REDIS_URL" and "@" not in value, key
        for obj in objects:
            for container in containers(obj):
                for env in container.get("env", []):
                    if SECRET_NAME.search(env["name"]):
                        assert "valueFrom" in env and "secretKeyRef" in env["valueFrom"], env["name"]


# ---------------------------------------------------------------------------------------------- RBAC
def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class TestRbac:
    def test_nothing_cluster_wide_no_wildcards_no_secrets(self, objects: list[dict[str, Any]]) -> None:
        kinds = {obj["kind"] for obj in objects}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        for role in by_kind(objects, "Role").values():
            for group, resource, verb in _grants(role):
                assert "*" not in (group, resource, verb)
                assert resource not in ("secrets", "configmaps", "serviceaccounts", "serviceaccounts/token")
                assert resource not in ("roles", "rolebindings") and verb not in ("escalate", "bind", "impersonate")
                writes_pods = resource in ("pods", "pods/exec", "pods/attach") and verb not in ("get", "list", "watch")
                # Only build pods are created, in the build namespace, which holds nothing else.
                assert not writes_pods or (role["metadata"]["namespace"], resource, verb) in {
                    (BUILD_NAMESPACE, "pods", "create"),
                    (BUILD_NAMESPACE, "pods", "delete"),
                }
            assert role["metadata"]["namespace"] != APP_NAMESPACE

    def test_the_worker_may_do_what_the_kubernetes_target_and_buildah_builder_do(self, objects) -> None:
        target = KubernetesTarget(api_url="http://127.0.0.1:1")
        assert set(target._apis()) == set(SCORING_KINDS), "the target manages other kinds: update the Role"
        roles = {(r["metadata"]["namespace"], name): r for name, r in by_kind(objects, "Role").items()}
        deployer = _grants(roles[TARGET_NAMESPACE, "modelplane-deployer"])
        for group, plural in SCORING_KINDS.values():
            for verb in ("get", "create", "patch", "delete"):  # read, server-side apply, tear down
                assert (group, plural, verb) in deployer
        assert {("", "pods", "list"), ("", "events", "list"), ("", "pods/log", "get")} <= deployer
        router = _grants(roles[TARGET_NAMESPACE, "modelplane-router"])  # HTTPRoutes of progressive rollouts
        assert router == {("gateway.networking.k8s.io", "httproutes", v) for v in ("get", "create", "patch", "delete")}
        builder = _grants(roles[BUILD_NAMESPACE, "modelplane-builder"])
        assert {("", "pods", v) for v in ("get", "create", "delete")} <= builder
        assert {("", "events", "list"), ("", "pods/log", "get")} <= builder
        assert not any(group == "batch" for group, _, _ in builder)
        assert config(objects)["BUILD_POD_NAMESPACE"] == BUILD_NAMESPACE

    def test_only_the_worker_is_bound(self, objects: list[dict[str, Any]]) -> None:
        bindings = by_kind(objects, "RoleBinding")
        assert bindings
        for binding in bindings.values():
            assert binding["roleRef"]["kind"] == "Role"
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": "modelplane-worker", "namespace": APP_NAMESPACE}
            ]
        namespaces = {binding["metadata"]["namespace"] for binding in bindings.values()}
        assert namespaces == {TARGET_NAMESPACE, BUILD_NAMESPACE}


# ---------------------------------------------------------------------------------------------- network
class TestNetworkPolicies:
    def test_default_deny_then_dns_ingress_and_egress(self, objects: list[dict[str, Any]], overlay: str) -> None:
        policies = by_kind(objects, "NetworkPolicy")
        deny = policies["default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns_ports = {(p["protocol"], p["port"]) for p in policies["allow-dns"]["spec"]["egress"][0]["ports"]}
        assert dns_ports == {("UDP", 53), ("TCP", 53)}
        source = policies["web-from-ingress"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
        expected = {"dev": "ingress-nginx", "aks": "app-routing-system"}[overlay]
        assert source == {"kubernetes.io/metadata.name": expected}
        assert policies["web-from-ingress"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
        if overlay == "dev":
            assert {"postgres-from-modelplane", "redis-from-modelplane"} <= set(policies)

    def test_build_pods_are_unreachable_and_reach_dns_and_https_only(self, objects: list[dict[str, Any]]) -> None:
        policies = by_kind(objects, "NetworkPolicy")
        deny, egress = policies["builds-default-deny"], policies["builds-egress"]
        assert deny["metadata"]["namespace"] == egress["metadata"]["namespace"] == BUILD_NAMESPACE
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        # The selector is the label the buildah builder gives its pods.
        assert (
            render_pod(BuildRequest(Path("."), "r.example/m:1", {}, {}), "build-1", {"context_pvc": "c"})["metadata"][
                "labels"
            ].items()
            >= egress["spec"]["podSelector"]["matchLabels"].items()
        )
        ports = {(p["protocol"], p["port"]) for rule in egress["spec"]["egress"] for p in rule["ports"]}
        assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
