"""The in-cluster image builder (``buildah``: a build pod) against the Kubernetes emulator, through the real
``kubernetes`` client over HTTP: the emulator's Pod Security admission (k8s_pod_security.py) refuses what the API
server refuses, and its build-pod kubelet (k8s_controllers.BuildPodKubelet) moves pods Pending -> Running ->
Succeeded/Failed on a fast real clock. Registry access with workload identity runs against the ACR emulator.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import kubernetes.client
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.deployments.backends import PermanentBackendError
from apps.deployments.builders import BuildRequest, configured_builder, get_builder
from apps.deployments.builders.buildah import AUTH_SCRIPT, BuildahImageBuilder, render_pod
from apps.deployments.builders.image_registry import ImageRegistryClient
from apps.deployments.targets.base import ServingSpec
from apps.deployments.targets.kubernetes_manifests import render_deployment
from controlplane.env import env_renamed
from tests.emulators.acr import AcrEmulator, FakeCredential
from tests.emulators.k8s import Controller, EmulatorThread
from tests.emulators.k8s_controllers import BuildPodKubelet, BuildRun, Stage

DIGEST = "sha256:" + "5e" * 32
IMAGE = "registry.example:5000/models/credit-default:0f3a9c"
ENFORCE = "pod-security.kubernetes.io/enforce"


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "model").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nCOPY model/ /opt/model/\n")
    (context / "model" / "MLmodel").write_text("flavors: {}\n")
    return context


def _namespace(controller: Controller, level: str) -> str:
    name = f"builds-{level}-{uuid.uuid4().hex[:6]}"
    controller.create_namespace(name, {ENFORCE: level})
    return name


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def builds(k8s_api: EmulatorThread, k8s_controller: Controller) -> str:
    """A build namespace as deploy/kubernetes/base/namespaces.yaml makes it: Pod Security "baseline"."""
    return _namespace(k8s_controller, "baseline")


@pytest.fixture
def kubelet(k8s_api: EmulatorThread, builds: str):
    """The build pods' kubelet; tests set ``kubelet.runs[pod name]`` (default: a quick successful build)."""
    runs: dict[str, BuildRun] = {}
    default = BuildRun(log="STEP 1/2: FROM python:3.11-slim-bookworm\nSTEP 2/2: COPY model/ /opt/model/\n"
                       "Writing manifest to image destination\n", message=DIGEST)  # fmt: skip
    running = BuildPodKubelet(k8s_api, builds, lambda pod: runs.get(pod["metadata"]["name"], default)).start()
    running.runs = runs
    yield running
    running.stop()


def _builder(k8s_api: EmulatorThread, namespace: str, tmp_path: Path, **overrides) -> BuildahImageBuilder:
    options = {
        "api_url": k8s_api.url,
        "namespace": namespace,
        "context_pvc": "build-contexts",
        "context_dir": str(tmp_path / "shared"),
        "service_account": "modelplane-builder",
        "workload_identity": True,
        "credential": FakeCredential(),
        "poll_interval": 0.02,
        "pending_timeout": 5,
        **overrides,
    }
    return get_builder("buildah", **options)


def _posts(controller: Controller, namespace: str) -> list[str]:
    return [path for method, path, _, _ in controller.requests() if method == "POST" and f"/{namespace}/pods" in path]


# ---------------------------------------------------------------------------------------------- building
class BuildahBuildTests:
    def test_a_pod_builds_and_pushes_and_its_log_and_digest_come_back(
        self, k8s_api, k8s_controller, builds, kubelet, tmp_path
    ):
        builder = _builder(k8s_api, builds, tmp_path)
        request = BuildRequest(_context(tmp_path), IMAGE, {"MODEL_NAME": "credit-default"}, {"a.b/rev": "r2"})
        lines: list[str] = []
        assert builder.build_and_push(request, lines.append) == DIGEST
        assert "Writing manifest to image destination" in lines
        assert f"created build pod {builds}/build-0f3a9c" in lines
        assert k8s_controller.get("Pod", builds, "build-0f3a9c") is None  # deleted once its digest was read
        assert not (tmp_path / "shared" / "build-0f3a9c").exists()  # the handed-over context is cleaned up

    def test_the_pod_passes_baseline_admission_with_workload_identity_and_no_password(
        self, k8s_api, k8s_controller, builds, tmp_path
    ):
        # No kubelet: the pod stays as admitted, to be read back.
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=60)
        request = BuildRequest(_context(tmp_path), IMAGE, {"MODEL_NAME": "credit-default"}, {})
        thread, outcome = _in_thread(lambda: builder.build_and_push(request, lambda line: None))
        pod = _wait(lambda: k8s_controller.get("Pod", builds, "build-0f3a9c"))
        labels, spec = pod["metadata"]["labels"], pod["spec"]
        assert labels["azure.workload.identity/use"] == "true"
        assert spec["serviceAccountName"] == "modelplane-builder"
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 3600
        container = spec["containers"][0]
        script = container["command"][2]
        assert AUTH_SCRIPT in script  # logs in with the workload identity ...
        assert "registry-auth" not in {v["name"] for v in spec["volumes"]}  # ... and mounts no password
        assert "buildah bud --isolation=chroot" in script and "--build-arg=MODEL_NAME=credit-default" in script
        assert f"buildah push --tls-verify=true --retry=2 --digestfile=/dev/termination-log {IMAGE}" in script
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["context"]["persistentVolumeClaim"] == {"claimName": "build-contexts", "readOnly": True}
        assert (tmp_path / "shared" / "build-0f3a9c" / "Dockerfile").is_file()
        _finish(k8s_controller, builds, "build-0f3a9c")
        thread.join(15)
        assert outcome == {"value": DIGEST}

    @pytest.mark.parametrize("version", ["1.31", "1.33"])
    def test_the_pod_is_valid_against_the_api_schema(self, version, tmp_path):
        import kubernetes_validate

        options = {"context_pvc": "c", "workload_identity": True, "service_account": "b", "registry_secret": "s"}
        for extra in ({}, {"workload_identity": False}):
            pod = render_pod(BuildRequest(tmp_path, IMAGE, {"A": "1"}, {"a.b/c": "d"}), "build-1", options | extra)
            kubernetes_validate.validate(pod, version, strict=True)

    def test_a_finished_pod_is_followed_not_built_again(self, k8s_api, k8s_controller, builds, tmp_path):
        builder = _builder(k8s_api, builds, tmp_path)
        request = BuildRequest(_context(tmp_path), IMAGE, {}, {})
        body = render_pod(request, "build-0f3a9c", builder.options)
        kubernetes_client(k8s_api).create_namespaced_pod(builds, body)  # a worker died after creating it
        _finish(k8s_controller, builds, "build-0f3a9c")
        lines: list[str] = []
        assert builder.build_and_push(request, lines.append) == DIGEST
        assert f"following the existing build pod {builds}/build-0f3a9c" in lines
        assert len(_posts(k8s_controller, builds)) == 1

    def test_a_failed_build_is_permanent_with_the_log_tail(self, k8s_api, builds, kubelet, tmp_path):
        failure = 'error building at STEP "RUN pip install": exit status 1'
        kubelet.runs["build-bad1"] = BuildRun(log=f"STEP 3/9: RUN pip install\n{failure}\n", exit_code=1)
        builder = _builder(k8s_api, builds, tmp_path)
        request = BuildRequest(_context(tmp_path), "registry.example:5000/models/x:bad1", {}, {})
        with pytest.raises(PermanentBackendError) as caught:
            builder.build_and_push(request, lambda line: None)
        assert caught.value.message.startswith(f"the build pod {builds}/build-bad1 failed: buildah exited with 1")
        assert failure in caught.value.message

    def test_a_build_past_its_deadline_fails_with_the_reason(self, k8s_api, builds, kubelet, tmp_path):
        kubelet.runs["build-slow"] = BuildRun(run_seconds=60)
        builder = _builder(k8s_api, builds, tmp_path, timeout=1)  # activeDeadlineSeconds: 1
        request = BuildRequest(_context(tmp_path), "registry.example:5000/models/x:slow", {}, {})
        with pytest.raises(PermanentBackendError, match="failed: DeadlineExceeded: Pod was active on the node"):
            builder.build_and_push(request, lambda line: None)


def _wait(fn, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("never happened")


def _finish(controller: Controller, namespace: str, name: str) -> None:
    """The kubelet's last word on a build pod: succeeded, with the digest as its termination message."""

    def change(pod: dict) -> None:
        pod["status"] = {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "buildah",
                    "image": pod["spec"]["containers"][0]["image"],
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": DIGEST}},
                }
            ],
        }

    controller._update("Pod", namespace, name, change)
    controller.set_log(namespace, name, "buildah", "Writing manifest to image destination\n", previous=False)


def kubernetes_client(k8s_api: EmulatorThread) -> kubernetes.client.CoreV1Api:
    config = kubernetes.client.Configuration()
    config.host = k8s_api.url
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))


# ---------------------------------------------------------------------------------------------- admission
class PodSecurityAdmissionTests:
    def test_a_restricted_namespace_refuses_the_build_pod_at_once_with_the_admission_message(
        self, k8s_api, k8s_controller, tmp_path
    ):
        restricted = _namespace(k8s_controller, "restricted")
        builder = _builder(k8s_api, restricted, tmp_path)
        with pytest.raises(PermanentBackendError) as caught:
            builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None)
        assert caught.value.message.startswith(
            "Kubernetes API refused to create the build pod (403): "
            'pods "build-0f3a9c" is forbidden: violates PodSecurity "restricted:latest": '
            'allowPrivilegeEscalation != false (container "buildah" must set '
            "securityContext.allowPrivilegeEscalation=false), "
            'unrestricted capabilities (container "buildah" must set securityContext.capabilities.drop=["ALL"]; '
            'container "buildah" must not include "SETFCAP" in securityContext.capabilities.add), '
        )
        assert 'runAsUser=0 (container "buildah" must not set runAsUser=0)' in caught.value.message
        # Refused on the create: the builder never started polling for a pod that does not exist.
        reads = [p for m, p, _, _ in k8s_controller.requests() if m == "GET" and f"/{restricted}/" in p]
        assert len(reads) == 1  # the look for a pod left by an earlier attempt, before the create

    def test_the_scoring_pods_pass_restricted_through_the_api(self, k8s_api, k8s_controller):
        """The other side of the trade-off: what the kubernetes target serves fits the models' restricted namespace."""
        restricted = _namespace(k8s_controller, "restricted")
        spec = ServingSpec(
            deployment="credit-default",
            namespace=restricted,
            environment="production",
            revision="r1",
            model_name="credit-default",
            model_version="1",
            model_uri="models:/credit-default/1",
            image=IMAGE,
        )
        template = render_deployment(spec)["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "scoring"}, "spec": template["spec"]}
        kubernetes_client(k8s_api).create_namespaced_pod(restricted, pod)
        assert k8s_controller.get("Pod", restricted, "scoring") is not None

    def test_a_kaniko_style_root_pod_is_refused_by_restricted(self, k8s_api, k8s_controller):
        restricted = _namespace(k8s_controller, "restricted")
        pod = {  # what the kaniko builder made: the executor as root, no security context at all
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "kaniko-0f3a9c"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "kaniko", "image": "gcr.io/kaniko-project/executor:v1.23.2"}],
            },
        }
        with pytest.raises(kubernetes.client.ApiException) as caught:
            kubernetes_client(k8s_api).create_namespaced_pod(restricted, pod)
        assert caught.value.status == 403
        assert json.loads(caught.value.body)["message"] == (
            'pods "kaniko-0f3a9c" is forbidden: violates PodSecurity "restricted:latest": '
            'allowPrivilegeEscalation != false (container "kaniko" must set '
            "securityContext.allowPrivilegeEscalation=false), "
            'unrestricted capabilities (container "kaniko" must set securityContext.capabilities.drop=["ALL"]), '
            'runAsNonRoot != true (pod or container "kaniko" must set securityContext.runAsNonRoot=true), '
            'seccompProfile (pod or container "kaniko" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")'
        )
        assert k8s_controller.get("Pod", restricted, "kaniko-0f3a9c") is None

    def test_a_hardened_pod_is_admitted_by_restricted(self, k8s_api, k8s_controller):
        restricted = _namespace(k8s_controller, "restricted")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hardened"},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "app",
                        "image": "python:3.11-slim-bookworm",
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        }
        kubernetes_client(k8s_api).create_namespaced_pod(restricted, pod)
        assert k8s_controller.get("Pod", restricted, "hardened") is not None

    @pytest.mark.parametrize(
        ("change", "refusal"),
        [
            ({"privileged": True}, 'privileged (container "b" must not set securityContext.privileged=true)'),
            (
                {"capabilities": {"add": ["SYS_ADMIN"]}},
                'non-default capabilities (container "b" must not include "SYS_ADMIN" in '
                "securityContext.capabilities.add)",
            ),
            (
                {"seccompProfile": {"type": "Unconfined"}},
                'seccompProfile (container "b" must not set securityContext.seccompProfile.type to "Unconfined")',
            ),
            (
                {"appArmorProfile": {"type": "Unconfined"}},
                'forbidden AppArmor profile (container "b" must not set AppArmor profile type to "Unconfined")',
            ),
        ],
        ids=["privileged", "sys-admin", "seccomp-unconfined", "apparmor-unconfined"],
    )
    def test_baseline_refuses_what_rootless_buildkit_or_a_privileged_builder_needs(
        self, k8s_api, k8s_controller, change, refusal
    ):
        baseline = _namespace(k8s_controller, "baseline")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "b"},
            "spec": {"containers": [{"name": "b", "image": "moby/buildkit:rootless", "securityContext": change}]},
        }
        with pytest.raises(kubernetes.client.ApiException) as caught:
            kubernetes_client(k8s_api).create_namespaced_pod(baseline, pod)
        assert json.loads(caught.value.body)["message"] == (
            f'pods "b" is forbidden: violates PodSecurity "baseline:latest": {refusal}'
        )

    def test_baseline_refuses_host_paths_and_namespaces(self, k8s_api, k8s_controller):
        baseline = _namespace(k8s_controller, "baseline")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "h"},
            "spec": {
                "hostPID": True,
                "containers": [{"name": "h", "image": "busybox"}],
                "volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
            },
        }
        with pytest.raises(kubernetes.client.ApiException) as caught:
            kubernetes_client(k8s_api).create_namespaced_pod(baseline, pod)
        assert json.loads(caught.value.body)["message"] == (
            'pods "h" is forbidden: violates PodSecurity "baseline:latest": '
            'host namespaces (hostPID=true), hostPath volumes (volume "docker")'
        )


# ---------------------------------------------------------------------------------------------- pending pods
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available."
PULL_FAILED = (
    'Failed to pull image "quay.io/buildah/stable:v1.42.2": failed to resolve reference: unexpected status '
    "from HEAD request: 403 Forbidden"
)


class PendingBuildPodTests:
    def test_an_unschedulable_build_pod_fails_in_bounded_time_with_the_schedulers_message(
        self, k8s_api, k8s_controller, builds, kubelet, tmp_path
    ):
        kubelet.runs["build-0f3a9c"] = BuildRun(
            stages=(
                Stage(3600, unschedulable=UNSCHEDULABLE, events=(("FailedScheduling", UNSCHEDULABLE, "scheduler"),)),
            )
        )
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=0.3)
        with pytest.raises(PermanentBackendError) as caught:
            builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None)
        message = caught.value.message
        assert message.startswith(f"the build pod {builds}/build-0f3a9c stayed Pending for ")
        assert f"(limit 0 s): Unschedulable: {UNSCHEDULABLE}; FailedScheduling: {UNSCHEDULABLE}" in message
        assert k8s_controller.get("Pod", builds, "build-0f3a9c") is None  # removed: a retry starts afresh

    def test_a_persistent_image_pull_failure_fails_with_the_kubelets_message(self, k8s_api, builds, kubelet, tmp_path):
        backoff = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "quay.io/buildah/stable:v1.42.2"'}
        kubelet.runs["build-0f3a9c"] = BuildRun(
            stages=(
                Stage(0.05, events=(("Scheduled", "Successfully assigned", "default-scheduler"),)),
                Stage(3600, waiting=backoff, events=(("Failed", PULL_FAILED, "kubelet"),)),
            )
        )
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=0.3)
        with pytest.raises(PermanentBackendError) as caught:
            builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None)
        assert f"ImagePullBackOff: {backoff['message']}; Failed: {PULL_FAILED}" in caught.value.message

    def test_a_pull_error_that_recovers_is_not_a_failure(self, k8s_api, builds, kubelet, tmp_path):
        pull_error = {"reason": "ErrImagePull", "message": "429 Too Many Requests"}
        kubelet.runs["build-0f3a9c"] = BuildRun(
            stages=(Stage(0.2, waiting=pull_error, events=(("Failed", "429 Too Many Requests", "kubelet"),)),),
            message=DIGEST,
        )
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=3)
        assert builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None) == DIGEST

    def test_an_invalid_image_name_fails_at_once(self, k8s_api, builds, kubelet, tmp_path):
        invalid = {"reason": "InvalidImageName", "message": 'Failed to apply default image tag "Quay.io/x:"'}
        kubelet.runs["build-0f3a9c"] = BuildRun(stages=(Stage(3600, waiting=invalid),))
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=3600)
        with pytest.raises(PermanentBackendError, match="cannot start: InvalidImageName: Failed to apply default"):
            builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None)

    def test_a_triggered_scale_up_allows_the_longer_limit(self, k8s_api, builds, kubelet, tmp_path):
        scale_up = "pod triggered scale-up: [{aks-build-12345678-vmss 1->2 (max: 5)}]"
        kubelet.runs["build-0f3a9c"] = BuildRun(
            stages=(
                Stage(
                    0.6,
                    unschedulable=UNSCHEDULABLE,
                    events=(
                        ("FailedScheduling", UNSCHEDULABLE, "default-scheduler"),
                        ("TriggeredScaleUp", scale_up, "cluster-autoscaler"),
                    ),
                ),
            ),
            message=DIGEST,
        )
        builder = _builder(k8s_api, builds, tmp_path, pending_timeout=0.2, scale_up_timeout=30)
        assert builder.build_and_push(BuildRequest(_context(tmp_path), IMAGE, {}, {}), lambda line: None) == DIGEST


# ---------------------------------------------------------------------------------------------- ACR access
@pytest.fixture
def acr(tmp_path) -> AcrEmulator:
    emulator = AcrEmulator(tmp_path).start()
    yield emulator
    emulator.stop()


class WorkloadIdentityRegistryTests:
    def test_the_registry_check_exchanges_the_entra_token_without_a_password(self, acr):
        acr.tags[("models/credit-default", "0f3a9c")] = DIGEST
        credential = FakeCredential()
        client = ImageRegistryClient(verify=acr.ca, credential=credential)
        assert client.manifest_digest(f"{acr.host}/models/credit-default:0f3a9c") == DIGEST
        assert client.manifest_digest(f"{acr.host}/models/credit-default:absent") is None
        assert credential.scopes[0] == "https://containerregistry.azure.net/.default"
        assert "/oauth2/exchange" in acr.paths("POST") and "/oauth2/token" in acr.paths("POST")

    def test_without_a_credential_the_registry_is_refused_anonymously(self, acr):
        client = ImageRegistryClient(verify=acr.ca)
        with pytest.raises(PermanentBackendError, match="refused a token anonymously"):
            client.manifest_digest(f"{acr.host}/models/credit-default:0f3a9c")

    def test_an_identity_the_registry_does_not_know_is_named(self, acr):
        client = ImageRegistryClient(verify=acr.ca, credential=FakeCredential("someone-else"))
        with pytest.raises(PermanentBackendError, match="refused the workload identity's Entra token .401.; give"):
            client.manifest_digest(f"{acr.host}/models/credit-default:0f3a9c")

    def test_the_builders_exists_uses_the_workload_identity(self, acr, k8s_api, tmp_path):
        acr.tags[("models/x", "1")] = DIGEST
        builder = _builder(k8s_api, "unused", tmp_path, ca_bundle=acr.ca)
        assert builder.exists(f"{acr.host}/models/x:1") is True
        assert builder.registry.username == "" and builder.registry.password == ""

    def test_the_pods_login_script_gets_a_refresh_token_that_the_registry_accepts(self, acr, tmp_path):
        """The pod's shell script, run with sh and curl as the pod runs it, against Entra and ACR emulators."""
        token_file = tmp_path / "azure-identity-token"
        token_file.write_text(acr.federated_token)
        auth_file = tmp_path / "auth.json"
        env = {
            "PATH": os.environ["PATH"],
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),  # what the workload identity webhook injects
            "AZURE_AUTHORITY_HOST": acr.url + "/",
            "AZURE_TENANT_ID": "72f988bf-0000-0000-0000-000000000000",
            "AZURE_CLIENT_ID": "0c1f0b8e-0000-0000-0000-000000000000",
            "CURL_CA_BUNDLE": acr.ca,
            "REGISTRY": acr.host,
            "REGISTRY_URL": acr.url,
            "REGISTRY_AUTH_FILE": str(auth_file),
        }
        done = subprocess.run(["/bin/sh", "-c", AUTH_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"logged in to {acr.host} with workload identity"
        auth = json.loads(auth_file.read_text())["auths"][acr.host]["auth"]
        user, _, password = base64.b64decode(auth).decode().partition(":")
        assert user == "00000000-0000-0000-0000-000000000000"
        # buildah logs in with exactly these: the registry hands out a token for them.
        acr.tags[("models/x", "1")] = DIGEST
        assert (
            ImageRegistryClient(verify=acr.ca, username=user, password=password).manifest_digest(
                f"{acr.host}/models/x:1"
            )
            == DIGEST
        )

    def test_the_login_script_fails_loudly_when_entra_refuses_the_token(self, acr, tmp_path):
        token_file = tmp_path / "azure-identity-token"
        token_file.write_text("a-token-of-another-service-account")
        env = {
            "PATH": os.environ["PATH"],
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_AUTHORITY_HOST": acr.url,
            "AZURE_TENANT_ID": "t",
            "AZURE_CLIENT_ID": "c",
            "CURL_CA_BUNDLE": acr.ca,
            "REGISTRY": acr.host,
            "REGISTRY_URL": acr.url,
            "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"),
        }
        done = subprocess.run(["/bin/sh", "-c", AUTH_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "401" in done.stderr and not (tmp_path / "auth.json").exists()


# ---------------------------------------------------------------------------------------------- from kaniko
class KanikoMigrationTests:
    def test_an_environment_or_revision_that_chose_kaniko_builds_with_buildah(self, settings, tmp_path):
        settings.IMAGE_BUILDER_OPTIONS = {
            "buildah": {"api_url": "http://127.0.0.1:1", "context_pvc": "c", "context_dir": str(tmp_path)}
        }
        assert isinstance(configured_builder("kaniko"), BuildahImageBuilder)

    def test_the_migration_moves_kaniko_environments_to_buildah(self, migrator):
        executor = migrator
        graph = executor.loader.graph  # found by name, so a renumbered migration is still the one tested
        node = next(key for key in graph.nodes if key[0] == "deployments" and key[1].endswith("kaniko_to_buildah"))
        before, after = sorted(graph.node_map[node].parents)[:1], [node]
        before = [parent.key for parent in before]
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("deployments", "Environment")
        old.objects.create(name="staging", target="kubernetes", namespace="ml", image_builder="kaniko",
                           image_registry="modelplane.azurecr.io/models")  # fmt: skip
        old.objects.create(name="dev", image_builder="acr", image_registry="modelplane.azurecr.io/models")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("deployments", "Environment")
        assert dict(new.objects.values_list("name", "image_builder")) == {"staging": "buildah", "dev": "acr"}

    def test_the_kaniko_settings_are_refused_with_their_new_names(self, monkeypatch):
        monkeypatch.setenv("KANIKO_CONTEXT_PVC", "build-context")
        with pytest.raises(ImproperlyConfigured, match="KANIKO_CONTEXT_PVC is now BUILD_POD_CONTEXT_PVC"):
            env_renamed({"KANIKO_CONTEXT_PVC": "BUILD_POD_CONTEXT_PVC"}, why="replaced")

    def test_missing_settings_are_named(self):
        with pytest.raises(PermanentBackendError, match="set BUILD_POD_CONTEXT_PVC, BUILD_POD_CONTEXT_DIR"):
            get_builder("buildah", namespace="builds")
