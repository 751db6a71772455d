"""The kubernetes target through the real ``kubernetes`` client over HTTP, against the test-side API emulator.

Nothing is patched: the target talks HTTP to ``k8s_api``; the test plays the controllers and kubelets through
``k8s_controller`` (Deployment status, pods with container states, events, container logs).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes.client
import pytest

from apps.deployments.backends import PermanentBackendError, TransientBackendError
from apps.deployments.targets.base import ServingSpec, get_target, rollout_time_limit
from apps.deployments.targets.kubernetes import KubernetesTarget
from apps.deployments.targets.kubernetes_manifests import FIELD_MANAGER, render_deployment, render_manifests, render_pdb
from apps.deployments.targets.kubernetes_pods import diagnose_pods
from tests.emulators.k8s import Controller, EmulatorThread, resource_of
from tests.emulators.k8s_controllers import DeploymentController, Stage

IMAGE = "registry.example.com/scoring/iris:ctx-3f2a"
KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")


@pytest.fixture
def spec(k8s_namespace: str) -> ServingSpec:
    return ServingSpec(
        deployment="iris",
        namespace=k8s_namespace,
        environment="prod",
        revision="r1",
        model_name="iris",
        model_version="3",
        model_uri="models:/iris/3",
        image=IMAGE,
        image_digest="sha256:3f2a",
        replicas=2,
        min_replicas=2,
        max_replicas=5,
        env={"SCORING_WORKERS": "2"},
    )


@pytest.fixture
def target(k8s_api: EmulatorThread) -> KubernetesTarget:
    return KubernetesTarget(
        api_url=k8s_api.url, poll_interval_seconds=0.02, unschedulable_grace_seconds=0, image_pull_grace_seconds=0
    )


class Logs(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def _env(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


class KubernetesRenderingTests:
    def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(self, spec: ServingSpec) -> None:
        import kubernetes_validate

        version = kubernetes_validate.utils.latest_version()
        for manifest in render_manifests(spec, replicas=4, image_pull_secrets=("acr-pull",)):
            kubernetes_validate.validate(manifest, version, strict=True)

    def test_label_values_are_made_valid_and_replicas_stay_within_the_autoscaling_bounds(
        self, spec: ServingSpec
    ) -> None:
        odd = replace(spec, model_version="1.0+local build", revision="r/7")
        deployment = render_deployment(odd, replicas=50)
        assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0-local-build"
        assert deployment["spec"]["template"]["metadata"]["labels"]["modelplane.io/revision"] == "r-7"
        assert deployment["metadata"]["annotations"]["modelplane.io/revision"] == "r/7"
        assert deployment["spec"]["replicas"] == 5
        assert render_deployment(odd, replicas=0)["spec"]["replicas"] == 2

    @pytest.mark.parametrize(
        ("message", "reason"),
        [
            ('pull access denied for "registry.example.com/x:404", repository does not exist', "access denied"),
            ('Failed to pull image "registry.example.com/x:401": manifest unknown', "not found"),
            ("dial tcp: lookup registry.example.com: no such host", "registry unreachable"),
            ("something new", "something new"),
        ],
    )
    def test_image_pull_messages_are_reduced_to_what_to_fix(self, message: str, reason: str) -> None:
        image = "registry.example.com/x:404" if "404" in message else "registry.example.com/x:401"
        pod = {
            "metadata": {"name": "iris-1"},
            "spec": {"containers": [{"name": "scoring-server", "image": image}]},
            "status": {
                "containerStatuses": [
                    {"name": "scoring-server", "state": {"waiting": {"reason": "ErrImagePull", "message": message}}}
                ]
            },
        }
        assert diagnose_pods([pod], [], read_log=lambda *_: "") == f"image pull failed: {reason} for {image}"

    def test_pods_run_read_only_on_linux_spread_over_zones_and_unready_ones_never_block_a_drain(
        self, spec: ServingSpec
    ) -> None:
        # Issue 20 #9.
        deployment, pdb = render_deployment(spec), render_pdb(spec)
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["topologyKey"] == "topology.kubernetes.io/zone"
        assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

    def test_an_oom_killed_crash_loop_says_so(self) -> None:
        pod = {
            "metadata": {"name": "iris-1"},
            "spec": {"containers": [{"name": "scoring-server", "image": IMAGE}]},
            "status": {
                "containerStatuses": [
                    {
                        "name": "scoring-server",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                    }
                ]
            },
        }
        message = diagnose_pods([pod], [], read_log=lambda pod, container: "")
        assert message == "container crash-looping: out of memory (OOMKilled)"


class KubernetesApplyTests:
    def test_it_creates_the_four_objects_with_labels_annotations_probes_and_strategy(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        logs = Logs()
        target.apply(spec, logs)

        for kind in KINDS:
            obj = k8s_controller.get(kind, spec.namespace, "iris")
            assert obj is not None, kind
            assert obj["metadata"]["labels"] == {
                "app.kubernetes.io/name": "scoring-server",
                "app.kubernetes.io/instance": "iris",
                "modelplane.io/environment": "prod",
                "modelplane.io/deployment": "iris",
                "app.kubernetes.io/version": "3",
                "app.kubernetes.io/component": "model-server",
                "app.kubernetes.io/part-of": "modelplane",
                "app.kubernetes.io/managed-by": "modelplane",
            }
            assert obj["metadata"]["annotations"] == {
                "modelplane.io/model-uri": "models:/iris/3",
                "modelplane.io/revision": "r1",
                "modelplane.io/image-digest": "sha256:3f2a",
            }
        assert len(logs) == 4 and all(line.startswith("applied ") for line in logs)

        deployment = k8s_controller.get("Deployment", spec.namespace, "iris")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
        assert deployment["spec"]["progressDeadlineSeconds"] == 600
        pod_spec = deployment["spec"]["template"]["spec"]
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
        assert pod_spec["securityContext"]["runAsUser"] == 10001
        container = pod_spec["containers"][0]
        assert container["image"] == IMAGE
        assert container["ports"] == [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "health", "containerPort": 8081, "protocol": "TCP"},
        ]
        assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
        assert container["resources"] == {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert _env(deployment) | {"SCORING_WORKERS": "2"} == _env(deployment)
        assert {k: v for k, v in _env(deployment).items() if k in ("SCORING_PORT", "SCORING_HOST")} == {
            "SCORING_PORT": "8080",
            "SCORING_HOST": "0.0.0.0",
        }
        assert _env(deployment)["SCORING_DEPLOYMENT"] == "iris"
        assert _env(deployment)["SCORING_MODEL_NAME"] == "iris"
        assert _env(deployment)["SCORING_MODEL_VERSION"] == "3"
        assert _env(deployment)["SCORING_REVISION"] == "r1"
        assert _env(deployment)["SCORING_IMAGE_DIGEST"] == "sha256:3f2a"

        service = k8s_controller.get("Service", spec.namespace, "iris")
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        hpa = k8s_controller.get("HorizontalPodAutoscaler", spec.namespace, "iris")
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
        assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"}
        pdb = k8s_controller.get("PodDisruptionBudget", spec.namespace, "iris")
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_it_applies_server_side_with_a_field_manager_naming_the_environment(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        writes = [r for r in k8s_controller.requests() if f"/namespaces/{spec.namespace}/" in r[1] and r[0] != "GET"]
        assert len(writes) == 4
        for method, _path, content_type, params in writes:
            assert method == "PATCH"
            assert content_type == "application/apply-patch+yaml"
            assert params["fieldManager"] == f"{FIELD_MANAGER}-prod"
            assert "force" not in params, "force would silently take fields over from another environment"

    def test_applying_twice_changes_nothing(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        before = {kind: k8s_controller.get(kind, spec.namespace, "iris")["metadata"] for kind in KINDS}
        target.apply(spec, Logs())
        after = {kind: k8s_controller.get(kind, spec.namespace, "iris")["metadata"] for kind in KINDS}
        for kind in KINDS:
            assert after[kind]["resourceVersion"] == before[kind]["resourceVersion"], kind
            assert after[kind]["uid"] == before[kind]["uid"], kind
            assert len(k8s_controller.list(kind, spec.namespace)) == 1, kind
        assert after["Deployment"]["generation"] == 1

    def test_a_new_revision_updates_the_deployment_and_keeps_the_autoscaled_replicas(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.scale(spec.namespace, "iris", 4)  # the autoscaler scaled up meanwhile
        new = replace(spec, revision="r2", image=IMAGE.replace("ctx-3f2a", "ctx-9b1c"), image_digest="sha256:9b1c")
        target.apply(new, Logs())

        deployment = k8s_controller.get("Deployment", spec.namespace, "iris")
        # Issue 20 #9: once the autoscaler owns spec.replicas, the apply leaves it out (no shared ownership to fight).
        owners = k8s_controller.emulator.owners.by_object[resource_of("Deployment"), spec.namespace, "iris"]
        assert [m for m, paths in owners.items() if ("spec", "replicas") in paths] == ["kube-controller-manager"]
        assert deployment["metadata"]["generation"] == 3  # r1, the scale, r2
        assert deployment["metadata"]["annotations"]["modelplane.io/revision"] == "r2"
        assert deployment["spec"]["replicas"] == 4
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["modelplane.io/revision"] == "r2"
        assert template["spec"]["containers"][0]["image"] == new.image
        assert _env(deployment)["SCORING_REVISION"] == "r2"
        assert len(k8s_controller.list("Deployment", spec.namespace)) == 1

    def test_an_unreachable_api_is_a_transient_error(self, spec: ServingSpec) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        target = get_target("kubernetes", api_url=f"http://127.0.0.1:{port}", request_timeout_seconds=2)
        with pytest.raises(TransientBackendError, match="cannot reach the Kubernetes API"):
            target.apply(spec, Logs())
        with pytest.raises(TransientBackendError):
            target.wait_ready(spec, Logs(), timeout_seconds=1)


class KubernetesConnectionTests:
    def test_an_api_url_with_a_bearer_token(
        self, k8s_api: EmulatorThread, spec: ServingSpec, k8s_controller: Controller
    ) -> None:
        k8s_api.emulator.auth.add_token("t0ken", "ci")
        target = get_target("kubernetes", api_url=k8s_api.url + "/", token="t0ken", verify_ssl="false")
        before = len(k8s_controller.authorizations())
        target.apply(spec, Logs())
        assert set(k8s_controller.authorizations()[before:]) == {"Bearer t0ken"}
        assert target.cluster.configuration.verify_ssl is False

    def test_a_kubeconfig_file_and_context(
        self, k8s_api: EmulatorThread, spec: ServingSpec, k8s_controller: Controller, tmp_path: Path
    ) -> None:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "emulator", "cluster": {"server": k8s_api.url}},
                {"name": "elsewhere", "cluster": {"server": "https://aks.example.invalid:443"}},
            ],
            "users": [{"name": "ci", "user": {"token": "from-kubeconfig"}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "emulator", "user": "ci"}},
                {"name": "prod", "context": {"cluster": "elsewhere", "user": "ci"}},
            ],
            "current-context": "prod",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(kubeconfig))
        k8s_api.emulator.auth.add_token("from-kubeconfig", "ci")
        target = get_target("kubernetes", kubeconfig=str(path), context="test")
        before = len(k8s_controller.authorizations())
        target.apply(spec, Logs())
        assert set(k8s_controller.authorizations()[before:]) == {"Bearer from-kubeconfig"}
        assert k8s_controller.get("Deployment", spec.namespace, "iris") is not None

    def test_without_settings_outside_a_cluster_it_says_it_cannot_configure_the_client(
        self, spec: ServingSpec, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        with pytest.raises(PermanentBackendError, match="cannot configure the Kubernetes client"):
            get_target("kubernetes").apply(spec, Logs())


class KubernetesRolloutTests:
    def test_it_is_ready_once_the_controller_reports_every_replica_updated_and_available(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.set_deployment_status(spec.namespace, "iris", replicas=1, updatedReplicas=1)
        timer = threading.Timer(0.3, k8s_controller.complete_rollout, (spec.namespace, "iris"))
        timer.start()
        logs = Logs()
        try:
            result = target.wait_ready(spec, logs, timeout_seconds=10)
        finally:
            timer.cancel()

        assert result.ok, result.message
        assert result.message == "2/2 replicas available"
        assert result.endpoint_url == f"http://iris.{spec.namespace}.svc.cluster.local"
        assert logs == ["1/2 replicas updated, 0 available", "2/2 replicas updated, 2 available"]

    def test_a_status_from_before_the_new_revision_does_not_count(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.complete_rollout(spec.namespace, "iris")
        target.apply(replace(spec, revision="r2", image=IMAGE + "-2"), Logs())  # generation 2, observed 1

        result = target.wait_ready(spec, Logs(), timeout_seconds=0.3)

        assert not result.ok
        assert result.message == "rollout not finished after 0.3 s: 2/2 replicas updated, 2 available"

    def test_an_image_pull_failure_names_the_reason_and_the_image(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.set_deployment_status(spec.namespace, "iris", replicas=3, updatedReplicas=1)
        message = (
            f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
            "unexpected status from HEAD request: 401 Unauthorized"
        )
        k8s_controller.create_pod(
            spec.namespace, "iris", container_state={"waiting": {"reason": "ErrImagePull", "message": message}}
        )
        logs = Logs()

        result = target.wait_ready(spec, logs, timeout_seconds=5)

        assert not result.ok
        assert result.message == f"image pull failed: unauthorized for {IMAGE}"
        assert logs[-1] == result.message

    def test_an_image_pull_back_off_takes_the_reason_from_the_events(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}
        pod = k8s_controller.create_pod(spec.namespace, "iris", container_state={"waiting": waiting})
        k8s_controller.add_event(
            spec.namespace, "Pod", pod["metadata"]["name"], "Failed", f'Failed to pull image "{IMAGE}": not found'
        )

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert (result.ok, result.message) == (False, f"image pull failed: not found for {IMAGE}")

    def test_a_crash_loop_shows_the_last_log_lines(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        pod = k8s_controller.create_pod(
            spec.namespace,
            "iris",
            phase="Running",
            restart_count=4,
            container_state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
            last_state={"terminated": {"reason": "Error", "exitCode": 3}},
        )
        lines = [f"line {n}" for n in range(30)] + ["ModelLoadError: no module named 'sklearn'"]
        k8s_controller.set_log(spec.namespace, pod["metadata"]["name"], "scoring-server", "\n".join(lines))

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert not result.ok
        assert result.message.startswith("container crash-looping: line 21\n")
        assert result.message.endswith("line 29\nModelLoadError: no module named 'sklearn'")
        assert "line 20" not in result.message

    def test_a_crash_loop_without_logs_gives_the_exit_code(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.create_pod(
            spec.namespace,
            "iris",
            container_state={"waiting": {"reason": "CrashLoopBackOff"}},
            last_state={"terminated": {"reason": "Error", "exitCode": 3}},
        )

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert result.message == "container crash-looping: exited with code 3 (Error)"

    def test_unschedulable_pods_are_reported_with_the_schedulers_message(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        message = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available."
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        k8s_controller.create_pod(spec.namespace, "iris", conditions=[condition])

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert (result.ok, result.message) == (False, f"pods cannot be scheduled: {message}")

    def test_unschedulable_pods_get_a_grace_period_for_the_cluster_autoscaler(
        self,
        k8s_api: EmulatorThread,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        patient = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, unschedulable_grace_seconds=60)
        patient.apply(spec, Logs())
        just_now = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory.",
            "lastTransitionTime": just_now,
        }
        k8s_controller.create_pod(spec.namespace, "iris", conditions=[condition])

        result = patient.wait_ready(spec, Logs(), timeout_seconds=0.3)

        assert result.message.startswith("rollout not finished after 0.3 s")

    def test_pods_of_an_older_revision_do_not_fail_the_new_one(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        k8s_controller.create_pod(
            spec.namespace, "iris", "old01", container_state={"waiting": {"reason": "CrashLoopBackOff"}}
        )
        new = replace(spec, revision="r2")
        target.apply(new, Logs())
        timer = threading.Timer(0.2, k8s_controller.complete_rollout, (spec.namespace, "iris"))
        timer.start()
        try:
            result = target.wait_ready(new, Logs(), timeout_seconds=10)
        finally:
            timer.cancel()

        assert result.ok, result.message

    def test_an_exceeded_progress_deadline_is_reported(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(replace(spec, progress_deadline_seconds=120), Logs())
        k8s_controller.set_deployment_status(
            spec.namespace,
            "iris",
            replicas=3,
            updatedReplicas=1,
            availableReplicas=2,
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "iris-7d9f" has timed out progressing.',
                }
            ],
        )

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert (result.ok, result.message) == (False, "rollout did not progress in 120 s")

    def test_an_exceeded_progress_deadline_quotes_the_latest_warning_about_the_new_pods(
        self, target: KubernetesTarget, spec: ServingSpec, k8s_controller: Controller
    ) -> None:
        target.apply(spec, Logs())
        running = {"running": {"startedAt": "2026-11-27T02:00:00Z"}}
        pod = k8s_controller.create_pod(spec.namespace, "iris", phase="Running", container_state=running)
        probe = "Readiness probe failed: HTTP probe failed with statuscode: 503"
        k8s_controller.add_event(spec.namespace, "Pod", pod["metadata"]["name"], "Unhealthy", probe)
        k8s_controller.add_event(spec.namespace, "Pod", "someone-else-7f", "Unhealthy", "not about our pods")
        deadline = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        k8s_controller.set_deployment_status(
            spec.namespace, "iris", replicas=3, updatedReplicas=1, conditions=[deadline]
        )

        result = target.wait_ready(spec, Logs(), timeout_seconds=5)

        assert result.message == f"rollout did not progress in 600 s (last warning: {probe})"


class KubernetesDeleteTests:
    def test_delete_removes_all_four_objects_and_may_run_twice(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        logs = Logs()
        target.delete(spec, logs)
        for kind in KINDS:
            assert k8s_controller.get(kind, spec.namespace, "iris") is None, kind
        assert len(logs) == 4 and all(line.startswith("deleted ") for line in logs)

        again = Logs()
        target.delete(spec, again)
        assert len(again) == 4 and all(line.endswith("already gone") for line in again)

    def test_a_deleted_deployment_is_not_ready(self, target: KubernetesTarget, spec: ServingSpec) -> None:
        result = target.wait_ready(spec, Logs(), timeout_seconds=1)
        assert (result.ok, result.message) == (False, f"Deployment {spec.namespace}/iris does not exist")

    def test_endpoint_url_is_the_cluster_dns_name_or_a_configured_template(self, spec: ServingSpec) -> None:
        assert KubernetesTarget().endpoint_url(spec) == f"http://iris.{spec.namespace}.svc.cluster.local"
        custom = KubernetesTarget(endpoint_url_template="https://{namespace}.models.example.com/{deployment}/")
        assert custom.endpoint_url(spec) == f"https://{spec.namespace}.models.example.com/iris"

    def test_retire_is_a_no_op_because_the_rolling_update_replaced_the_old_pods(
        self,
        target: KubernetesTarget,
        spec: ServingSpec,
        k8s_controller: Controller,
    ) -> None:
        target.apply(spec, Logs())
        before = len(k8s_controller.requests())
        target.retire(spec, Logs())
        assert len(k8s_controller.requests()) == before
        assert k8s_controller.get("Deployment", spec.namespace, "iris") is not None


class KubernetesEmulatorTests:
    """The emulator's fixes to kmock, through the real client (what the target does not exercise itself)."""

    @pytest.fixture
    def core(self, k8s_api: EmulatorThread) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kubernetes.client.Configuration(k8s_api.url)))

    @staticmethod
    def _pod(name: str, labels: dict[str, str]) -> dict:
        containers = [{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]}]
        return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": containers}}

    def test_put_replaces_and_refuses_a_stale_resource_version(self, core, k8s_namespace: str) -> None:
        created = json.loads(core.create_namespaced_pod(k8s_namespace, self._pod("p", {}), _preload_content=False).data)
        replaced = dict(created, metadata=dict(created["metadata"], labels={"x": "y"}))
        answer = json.loads(core.replace_namespaced_pod("p", k8s_namespace, replaced, _preload_content=False).data)
        assert answer["metadata"]["labels"] == {"x": "y"}
        assert answer["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        with pytest.raises(kubernetes.client.ApiException) as conflict:
            core.replace_namespaced_pod("p", k8s_namespace, replaced, _preload_content=False)
        assert conflict.value.status == 409

    def test_a_strategic_merge_patch_merges_containers_and_env_by_name(self, core, k8s_namespace: str) -> None:
        core.create_namespaced_pod(k8s_namespace, self._pod("p", {}), _preload_content=False)
        patch = {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}}
        answer = json.loads(core.patch_namespaced_pod("p", k8s_namespace, patch, _preload_content=False).data)
        container = answer["spec"]["containers"][0]
        assert container["image"] == "a:1"
        assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        assert answer["metadata"]["generation"] == 2

    def test_label_and_field_selectors_filter_lists(self, core, k8s_namespace: str) -> None:
        for name, tier in (("a", "web"), ("b", "db"), ("c", "cache")):
            core.create_namespaced_pod(k8s_namespace, self._pod(name, {"tier": tier}), _preload_content=False)

        def names(**selectors: str) -> list[str]:
            answer = core.list_namespaced_pod(k8s_namespace, _preload_content=False, **selectors)
            return sorted(item["metadata"]["name"] for item in json.loads(answer.data)["items"])

        assert names(label_selector="tier in (web, db)") == ["a", "b"]
        assert names(label_selector="tier!=web") == ["b", "c"]
        assert names(label_selector="tier=cache") == ["c"]
        assert names(field_selector="metadata.name=b") == ["b"]
        assert names(label_selector="missing") == []


# ---------------------------------------------------------------------------------------------- a live cluster
# The emulator's deployment controller, scheduler and kubelet play the rollout on a fast real clock (seconds are
# fractions of a second here), so the target sees what a cluster would report, as it changes.
AUTOSCALER = "cluster-autoscaler"
SCALE_UP = "pod triggered scale-up: [{aks-nodepool1-38213845-vmss 3->4 (max: 10)}]"
NO_NODE = "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available."
THROTTLED = (
    f'Failed to pull image "{IMAGE}": failed to pull and unpack image "{IMAGE}": failed to resolve reference: '
    "unexpected status from HEAD request: 429 Too Many Requests"
)
UNAUTHORIZED = f'Failed to pull image "{IMAGE}": unexpected status from HEAD request: 401 Unauthorized'


def _ready_of(pod: dict) -> dict:
    return next((c for c in pod.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})


def _pull_error(message: str) -> Stage:
    return Stage(0.15, waiting={"reason": "ErrImagePull", "message": message}, events=(("Failed", message, "kubelet"),))


BACK_OFF = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}


@pytest.fixture
def cluster(k8s_api: EmulatorThread, k8s_namespace: str):
    """Starts the emulator's deployment controller in the test's namespace with a script for new pods."""
    running: list[DeploymentController] = []

    def start(script) -> DeploymentController:
        controller = DeploymentController(k8s_api, k8s_namespace, script).start()
        running.append(controller)
        return controller

    yield start
    for controller in running:
        controller.stop()


class KubernetesLiveRolloutTests:
    def test_a_healthy_slow_rollout_is_not_cut_off_by_the_progress_deadline(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        # Issue 20 #3: three replicas of a new version that take 0.45 s each to load, replaced one at a time, need
        # ~1.4 s in all; the progress deadline (1 s) bounds each step, not the rollout.
        first = replace(spec, replicas=3, min_replicas=3, progress_deadline_seconds=1)
        slow = replace(first, revision="r2", image=IMAGE + "-2")
        loading = {first.image: 0.05, slow.image: 0.45}
        controller = cluster(lambda pod: [Stage(loading[pod["spec"]["containers"][0]["image"]])])
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02)
        target.apply(first, Logs())
        assert target.wait_ready(first, Logs(), timeout_seconds=rollout_time_limit(first)).ok
        target.apply(slow, Logs())
        started = time.monotonic()

        result = target.wait_ready(slow, Logs(), timeout_seconds=rollout_time_limit(slow))

        assert result.ok, result.message
        assert result.message == "3/3 replicas available"
        assert time.monotonic() - started > slow.progress_deadline_seconds  # what a single limit would have cut off
        assert rollout_time_limit(slow) == 4
        assert ("iris", "ProgressDeadlineExceeded") not in controller.history
        assert controller.history[-1] == ("iris", "NewReplicaSetAvailable")

    def test_the_emulated_rolling_update_keeps_every_replica_serving_and_surges_by_one(
        self, k8s_api: EmulatorThread, spec: ServingSpec, k8s_controller: Controller, cluster
    ) -> None:
        first = replace(spec, replicas=3, min_replicas=3, progress_deadline_seconds=5)
        second = replace(first, revision="r2", image=IMAGE + "-2")
        cluster(lambda pod: [Stage(0.15)])
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02)
        target.apply(first, Logs())
        assert target.wait_ready(first, Logs(), timeout_seconds=rollout_time_limit(first)).ok
        target.apply(second, Logs())
        samples: list[tuple[int, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pods = k8s_controller.list("Pod", spec.namespace)
                ready = [p for p in pods if {"type": "Ready", "status": "True"}.items() <= _ready_of(p).items()]
                samples.append((len(pods), len(ready)))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            assert target.wait_ready(second, Logs(), timeout_seconds=rollout_time_limit(second)).ok
        finally:
            done.set()
            sampler.join()

        assert max(total for total, _ in samples) == 4  # maxSurge 1
        assert min(ready for _, ready in samples) >= 3  # maxUnavailable 0
        images = {p["spec"]["containers"][0]["image"] for p in k8s_controller.list("Pod", spec.namespace)}
        assert images == {second.image}

    def test_a_stalled_rollout_fails_on_the_progress_deadline_not_the_overall_limit(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        stalled = replace(spec, replicas=1, min_replicas=1, progress_deadline_seconds=1)
        cluster(lambda pod: [Stage(60, waiting={"reason": "ContainerCreating"})])
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02)
        target.apply(stalled, Logs())
        started = time.monotonic()

        result = target.wait_ready(stalled, Logs(), timeout_seconds=30)

        assert (result.ok, result.message) == (False, "rollout did not progress in 1 s")
        assert time.monotonic() - started < 5

    def test_a_pod_waiting_for_a_triggered_scale_up_is_progress(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        # Issue 20 #4: the AKS autoscaler takes minutes to add a node; its TriggeredScaleUp event keeps the wait going
        # past the grace period given to pods nobody is adding a node for.
        events = (("FailedScheduling", NO_NODE, "default-scheduler"), ("TriggeredScaleUp", SCALE_UP, AUTOSCALER))
        cluster(lambda pod: [Stage(1.6, unschedulable=NO_NODE, events=events), Stage(0.1)])
        one = replace(spec, replicas=1, min_replicas=1, progress_deadline_seconds=5)
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, unschedulable_grace_seconds=0.3)
        target.apply(one, Logs())

        logs = Logs()
        result = target.wait_ready(one, logs, timeout_seconds=rollout_time_limit(one))

        assert result.ok, result.message
        assert f"1/1 replicas updated, 0 available; waiting for a new node ({SCALE_UP})" in logs

    def test_unschedulable_pods_the_autoscaler_will_not_help_fail_after_the_grace_period(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        refused = "pod didn't trigger scale-up: 1 max node group size reached"
        events = (("FailedScheduling", NO_NODE, "default-scheduler"), ("NotTriggerScaleUp", refused, AUTOSCALER))
        cluster(lambda pod: [Stage(60, unschedulable=NO_NODE, events=events)])
        one = replace(spec, replicas=1, min_replicas=1, progress_deadline_seconds=30)
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, unschedulable_grace_seconds=0.3)
        target.apply(one, Logs())
        started = time.monotonic()

        result = target.wait_ready(one, Logs(), timeout_seconds=20)

        assert (result.ok, result.message) == (
            False,
            f"pods cannot be scheduled: {NO_NODE} (cluster autoscaler: {refused})",
        )
        assert 0.3 <= time.monotonic() - started < 5

    def test_image_pulls_that_recover_are_not_a_failure(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        # Issue 20 #5: ACR throttling, role propagation and geo-replication lag recover; the kubelet retries.
        back_off = Stage(0.3, waiting=BACK_OFF, events=(("BackOff", BACK_OFF["message"], "kubelet"),))
        cluster(lambda pod: [_pull_error(THROTTLED), back_off, _pull_error(THROTTLED), back_off, Stage(0.05)])
        one = replace(spec, replicas=1, min_replicas=1, progress_deadline_seconds=5)
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, image_pull_grace_seconds=3)
        target.apply(one, Logs())

        result = target.wait_ready(one, Logs(), timeout_seconds=rollout_time_limit(one))

        assert result.ok, result.message

    def test_a_persistent_image_pull_back_off_fails_with_the_kubelets_message(
        self, k8s_api: EmulatorThread, spec: ServingSpec, cluster
    ) -> None:
        cluster(lambda pod: [_pull_error(UNAUTHORIZED), Stage(60, waiting=BACK_OFF)])
        one = replace(spec, replicas=1, min_replicas=1, progress_deadline_seconds=30)
        target = KubernetesTarget(api_url=k8s_api.url, poll_interval_seconds=0.02, image_pull_grace_seconds=1)
        target.apply(one, Logs())
        started = time.monotonic()

        result = target.wait_ready(one, Logs(), timeout_seconds=20)

        assert not result.ok
        assert result.message == (
            f"image pull failed: unauthorized for {IMAGE} (still failing after 1 s; the kubelet: {UNAUTHORIZED})"
        )
        assert 1 <= time.monotonic() - started < 5
