"""Build inside the target cluster: a bare Pod runs buildah (daemonless, the tool the local builder uses too), which
builds the context's Dockerfile and pushes the image itself. The worker hands the context over through a shared
volume (a PersistentVolumeClaim, e.g. Azure Files, that the worker mounts at ``context_dir`` and the pod mounts
read-only). This replaces the kaniko builder (kaniko's upstream was archived in June 2025); environments that
chose ``kaniko`` build with this one (``backends.IMAGE_BUILDERS.aliases``, migration 0004).

Pod Security: the build pod needs the ``baseline`` level, not ``restricted``. buildah runs as root inside the pod
(UID 0, chroot isolation, vfs storage) with the ``SETFCAP`` capability added, which baseline allows and restricted
refuses (runAsNonRoot, capabilities). Rootless builders do not fit restricted either: rootless buildah and BuildKit
need user namespaces (``unshare``, setuid ``newuidmap``), and BuildKit rootless documents seccomp and AppArmor
``Unconfined``, which even baseline refuses. So builds get a namespace of their own labelled
``pod-security.kubernetes.io/enforce: baseline`` (deploy/kubernetes/base/namespaces.yaml) holding nothing else.

A refusal is reported at once: the Pod create answers 403 from Pod Security admission and the step fails with that
message. A pod that stays Pending (unschedulable, an image that cannot be pulled) fails after ``pending_timeout``
seconds with the scheduler's or kubelet's message; a ``TriggeredScaleUp`` event (the cluster autoscaler adds a node)
allows ``scale_up_timeout`` instead.

Pushing to ACR uses workload identity when ``workload_identity`` is on: the pod carries the label
``azure.workload.identity/use: "true"`` and ``service_account`` (federated with an identity holding ``AcrPush``); it
exchanges the projected service-account token for an Entra token, that for an ACR refresh token at
``https://<registry>/oauth2/exchange``, and logs in with it (``AUTH_SCRIPT``). No password is stored anywhere. The
worker's own registry check (``exists``) does the same exchange with ``DefaultAzureCredential``. Otherwise a
``kubernetes.io/dockerconfigjson`` Secret (``registry_secret``) is mounted for the push.

Options (from ``settings.IMAGE_BUILDER_OPTIONS["buildah"]``); ``context_pvc`` and ``context_dir`` are required:

``api_url``/``token``/``verify_ssl``/``ca_cert``, else ``kubeconfig`` (+ ``context``), else in-cluster config:
                        the cluster (``kube.CONNECTION_OPTIONS``), configured as for the ``kubernetes`` target
``namespace``           where build pods run (default ``modelplane-builds``)
``context_pvc``         the claim the pod mounts at /workspace
``context_dir``         where the worker sees that same volume
``buildah_image``       the builder image (default ``quay.io/buildah/stable:v1.42.2``)
``service_account``     the pod's service account
``workload_identity``   label the pod for Azure workload identity and log in to the registry with it (default off)
``credential``          the worker's azure-core ``TokenCredential`` for ``exists`` (default ``DefaultAzureCredential``)
``registry_secret``     a ``kubernetes.io/dockerconfigjson`` Secret to push with, when not using workload identity
``tls_verify``, ``insecure_registries``, ``username``, ``password``  for ``exists`` (and ``--tls-verify=false``)
``ca_bundle``           a CA bundle the worker verifies the registry with in ``exists``
``timeout``             seconds a build may run (the pod's activeDeadlineSeconds; default 3600)
``pending_timeout``     seconds a pod may stay Pending (default 300)
``scale_up_timeout``    seconds a pod may stay Pending once the cluster autoscaler scales up for it (default 900)
``poll_interval``       seconds between pod status polls (default 3)
``cpu``/``memory``      the builder's requests and limits (default 1 CPU, 2Gi)

The pod is named after the image tag (the context digest), so a worker killed mid-build finds and follows the same
pod when the step runs again instead of starting a second build.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from apps.deployments.backends import Log, PermanentBackendError, TransientBackendError, truthy
from apps.deployments.builders.base import BuildRequest, ImageBuilder
from apps.deployments.builders.image_registry import ImageRegistryClient, parse_image
from apps.deployments.kube import KubernetesClient, status_of

__all__ = ["BuildahImageBuilder", "render_pod", "pod_name", "AUTH_SCRIPT"]

DEFAULT_IMAGE = "quay.io/buildah/stable:v1.42.2"
CONTAINER = "buildah"
WORKSPACE = "/workspace"
TAIL_LINES = 25
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"
# Waiting reasons the kubelet will not recover from by retrying.
TERMINAL_WAITING = {"InvalidImageName", "ErrImageNeverPull"}
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"  # the user name ACR expects with a refresh token

# Logs in to $REGISTRY with workload identity: the projected token (AZURE_FEDERATED_TOKEN_FILE, injected by the
# workload identity webhook with AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_AUTHORITY_HOST) buys an Entra token for
# the registry's audience, which /oauth2/exchange turns into an ACR refresh token; buildah reads it from
# $REGISTRY_AUTH_FILE. Plain sh + curl + sed: the builder image has no Python.
AUTH_SCRIPT = r"""
set -eu
field() { sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"; }
: "${AZURE_FEDERATED_TOKEN_FILE:?no workload identity token: label the pod and federate its service account}"
entra=$(curl -fsS --retry 3 "${AZURE_AUTHORITY_HOST%/}/$AZURE_TENANT_ID/oauth2/v2.0/token" \
  -d grant_type=client_credentials -d client_id="$AZURE_CLIENT_ID" \
  --data-urlencode scope=https://containerregistry.azure.net/.default \
  -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion@$AZURE_FEDERATED_TOKEN_FILE" | field access_token)
[ -n "$entra" ] || { echo "no Entra token for the workload identity" >&2; exit 1; }
refresh=$(curl -fsS --retry 3 "$REGISTRY_URL/oauth2/exchange" -d grant_type=access_token \
  -d service="$REGISTRY" -d tenant="$AZURE_TENANT_ID" --data-urlencode "access_token=$entra" | field refresh_token)
[ -n "$refresh" ] || { echo "$REGISTRY refused the workload identity token" >&2; exit 1; }
auth=$(printf '%s:%s' 00000000-0000-0000-0000-000000000000 "$refresh" | base64 | tr -d '\n')
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$REGISTRY" "$auth" > "$REGISTRY_AUTH_FILE"
echo "logged in to $REGISTRY with workload identity"
""".strip()


def pod_name(image: str) -> str:
    """``build-<tag>``: one pod per image, a valid DNS label (at most 63 characters)."""
    tag = re.sub(r"[^a-z0-9-]+", "-", parse_image(image).reference.lower()).strip("-")
    return f"build-{tag}"[:63].rstrip("-")


def _build_script(request: BuildRequest, name: str, options: dict[str, Any]) -> str:
    tls = "true" if truthy(options.get("tls_verify", True)) else "false"
    build = ["buildah", "bud", "--isolation=chroot", "--layers=false", f"--tls-verify={tls}"]
    build += [f"--file={WORKSPACE}/{name}/Dockerfile", f"--tag={request.image}"]
    build += [f"--build-arg={key}={value}" for key, value in request.build_args.items()]
    build += [f"--label={key}={value}" for key, value in request.labels.items()]
    build.append(f"{WORKSPACE}/{name}")
    # The digest goes to the termination message, where the worker reads it from the pod's terminated state.
    push = ["buildah", "push", f"--tls-verify={tls}", "--retry=2", "--digestfile=/dev/termination-log"]
    push += [request.image, f"docker://{request.image}"]
    lines = ["set -eu"]
    if truthy(options.get("workload_identity", False)):
        lines.append(AUTH_SCRIPT)
    lines += [shlex.join(build), shlex.join(push)]
    return "\n".join(lines)


def render_pod(request: BuildRequest, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The build pod: one buildah container, never restarted (a failed build is reported, not repeated)."""
    registry = parse_image(request.image).registry
    scheme = "http" if registry in (options.get("insecure_registries") or ()) else "https"
    env = [
        {"name": "STORAGE_DRIVER", "value": "vfs"},
        {"name": "BUILDAH_ISOLATION", "value": "chroot"},
        {"name": "REGISTRY", "value": registry},
        {"name": "REGISTRY_URL", "value": f"{scheme}://{registry}"},
        {"name": "REGISTRY_AUTH_FILE", "value": "/tmp/auth.json"},
    ]
    mounts = [
        {"name": "context", "mountPath": WORKSPACE, "readOnly": True},
        {"name": "storage", "mountPath": "/var/lib/containers"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "context", "persistentVolumeClaim": {"claimName": options["context_pvc"], "readOnly": True}},
        {"name": "storage", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    workload_identity = truthy(options.get("workload_identity", False))
    if options.get("registry_secret") and not workload_identity:
        env[-1]["value"] = "/run/registry/config.json"
        mounts.append({"name": "registry-auth", "mountPath": "/run/registry", "readOnly": True})
        volumes.append(
            {
                "name": "registry-auth",
                "secret": {
                    "secretName": options["registry_secret"],
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    resources = {"cpu": str(options.get("cpu") or "1"), "memory": str(options.get("memory") or "2Gi")}
    labels = {
        "app.kubernetes.io/name": "buildah",
        "app.kubernetes.io/component": "image-build",
        "app.kubernetes.io/managed-by": "modelplane",
    }
    if workload_identity:
        labels[WORKLOAD_IDENTITY_LABEL] = "true"
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": max(1, int(float(options.get("timeout") or 3600))),  # the API wants >= 1
        # The workload identity webhook projects its own token; the API token is not needed in a build.
        "automountServiceAccountToken": False,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "containers": [
            {
                "name": CONTAINER,
                "image": str(options.get("buildah_image") or DEFAULT_IMAGE),
                "command": ["/bin/sh", "-c", _build_script(request, name, options)],
                "env": env,
                "volumeMounts": mounts,
                "resources": {"requests": resources, "limits": resources},
                "terminationMessagePolicy": "File",
                # Pod Security "baseline": root in the pod, SETFCAP (in baseline's allowed set) so buildah can
                # commit layers with file capabilities; not privileged, no host namespaces, no hostPath.
                "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SETFCAP"]}},
            }
        ],
        "volumes": volumes,
    }
    if options.get("service_account"):
        spec["serviceAccountName"] = options["service_account"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": {"modelplane.io/image": request.image}},
        "spec": spec,
    }


class BuildahImageBuilder(ImageBuilder):
    name = "buildah"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        missing = [key for key in ("context_pvc", "context_dir") if not options.get(key)]
        if missing:
            names = ", ".join(f"BUILD_POD_{key.upper()}" for key in missing)
            raise PermanentBackendError(f"the buildah image builder is not configured: set {names}")
        self.namespace = str(options.get("namespace") or "modelplane-builds")
        self.timeout = float(options.get("timeout") or 3600)
        self.pending_timeout = float(options.get("pending_timeout") or 300)
        self.scale_up_timeout = float(options.get("scale_up_timeout") or 900)
        self.poll_interval = float(options.get("poll_interval") or 3)
        credential = options.get("credential")
        if credential is None and truthy(options.get("workload_identity", False)):
            from azure.identity import DefaultAzureCredential  # the worker's own workload identity

            credential = DefaultAzureCredential()
        self.registry = ImageRegistryClient(
            verify=options.get("ca_bundle") or truthy(options.get("tls_verify", True)),
            insecure_registries=list(options.get("insecure_registries") or ()),
            username=str(options.get("username") or ""),
            password=str(options.get("password") or ""),
            credential=credential,
        )
        self.cluster = KubernetesClient(options)

    # ------------------------------------------------------------------ interface
    def exists(self, image: str) -> bool:
        """HEAD the manifest in the registry (the worker must reach it, as the cluster does)."""
        return self.registry.manifest_digest(image) is not None

    def build_and_push(self, request: BuildRequest, log: Log) -> str:
        """Run (or find and follow) the image's build pod to its end; return the digest buildah pushed.

        A pod left from a failed attempt is replaced; a running or finished one is followed, not duplicated. A pod
        refused by admission, or stuck Pending past its limit, fails the build with the cluster's message.
        """
        if not (request.context_dir / "Dockerfile").is_file():
            raise PermanentBackendError(f"the build context {request.context_dir} has no Dockerfile")
        core = self.cluster.core()
        name = pod_name(request.image)
        pod = self._read(core, name)
        if pod is not None and _phase(pod) == "Failed":
            log(f"replacing the failed build pod {self.namespace}/{name}")
            self._delete(core, name)
            pod = None
        if pod is None:
            self._hand_over(request, name)
            body = render_pod(request, name, self.options)
            try:
                self.cluster.call("create the build pod", core.create_namespaced_pod, self.namespace, body)
                log(f"created build pod {self.namespace}/{name}")
            except PermanentBackendError as exc:
                if status_of(exc) != 409:  # 403 from Pod Security admission, 422 ...: reported as they are
                    raise
        else:
            log(f"following the existing build pod {self.namespace}/{name}")
        digest = self._follow(core, name, request.image, log)
        self._delete(core, name)
        shutil.rmtree(Path(self.options["context_dir"]) / name, ignore_errors=True)
        return digest

    # ------------------------------------------------------------------ steps
    def _hand_over(self, request: BuildRequest, name: str) -> None:
        """Copy the context onto the shared volume, where the pod will find it."""
        dest = Path(self.options["context_dir"]) / name
        try:
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(request.context_dir, dest)
        except OSError as exc:
            raise TransientBackendError(f"cannot write the build context to {dest}: {exc.strerror}") from exc

    def _read(self, core: Any, name: str) -> dict[str, Any] | None:
        return self.cluster.read("read the build pod", core.read_namespaced_pod, name, self.namespace)

    def _delete(self, core: Any, name: str) -> None:
        """Delete the pod and wait (bounded) until its name is free again."""
        try:
            self.cluster.call(
                "delete the build pod", core.delete_namespaced_pod, name, self.namespace, grace_period_seconds=0
            )
        except PermanentBackendError as exc:
            if status_of(exc) != 404:
                raise
        deadline = time.monotonic() + 60
        while self._read(core, name) is not None and time.monotonic() < deadline:
            time.sleep(self.poll_interval)

    def _follow(self, core: Any, name: str, image: str, log: Log) -> str:
        deadline = time.monotonic() + self.timeout + self.scale_up_timeout + 60
        pending_since = time.monotonic()
        stream = _PodLog(self, core, log)
        while True:
            pod = self._read(core, name)
            if pod is None:
                raise TransientBackendError(f"the build pod {self.namespace}/{name} disappeared; will build again")
            phase = _phase(pod)
            if phase in ("Running", "Succeeded", "Failed"):
                stream.poll(name, final=phase != "Running")
            if phase == "Succeeded":
                return _digest_of(pod) or self.registry.manifest_digest(image) or ""
            if phase == "Failed":
                raise PermanentBackendError(
                    f"the build pod {self.namespace}/{name} failed: {_why(pod)}; last lines:\n" + "\n".join(stream.tail)
                )
            if phase == "Pending":
                self._check_pending(core, pod, time.monotonic() - pending_since)
            if time.monotonic() > deadline:
                raise TransientBackendError(f"the build pod {self.namespace}/{name} did not finish in time")
            time.sleep(self.poll_interval)

    def _check_pending(self, core: Any, pod: dict[str, Any], waited: float) -> None:
        """Fail a pod that will not start: at once for an image reference the kubelet cannot use, after
        ``pending_timeout`` (or ``scale_up_timeout`` while the autoscaler adds a node) for anything else."""
        name = pod["metadata"]["name"]
        waiting = _waiting(pod)
        if waiting.get("reason") in TERMINAL_WAITING:
            self._delete(core, name)
            raise PermanentBackendError(f"the build pod {self.namespace}/{name} cannot start: {_describe(waiting)}")
        events = self._events(core, name)
        scaling = any(e.get("reason") == "TriggeredScaleUp" for e in events)
        limit = self.scale_up_timeout if scaling else self.pending_timeout
        if waited <= limit:
            return
        why = _describe(waiting) or _unschedulable(pod)
        warnings = [e for e in events if e.get("type") == "Warning" and e.get("message")]
        if warnings:
            last = warnings[-1]
            why = (
                f"{why}; {last.get('reason')}: {last['message']}" if why else f"{last.get('reason')}: {last['message']}"
            )
        self._delete(core, name)
        raise PermanentBackendError(
            f"the build pod {self.namespace}/{name} stayed Pending for {waited:.0f} s "
            f"(limit {limit:.0f} s): {why or 'no reason reported'}"
        )

    def _events(self, core: Any, name: str) -> list[dict[str, Any]]:
        answer = self.cluster.call(
            "list the build pod's events",
            core.list_namespaced_event,
            self.namespace,
            field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}",
        )
        items = answer.get("items") or []
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


class _PodLog:
    """Pass on the builder's new log lines on every poll (the log is re-read whole: builds log little)."""

    def __init__(self, builder: BuildahImageBuilder, core: Any, log: Log) -> None:
        self.builder, self.core, self.log = builder, core, log
        self.seen = 0
        self.tail: list[str] = []

    def poll(self, pod: str, *, final: bool) -> None:
        try:
            text = self.builder.cluster.call(
                "read the build log",
                self.core.read_namespaced_pod_log,
                pod,
                self.builder.namespace,
                container=CONTAINER,
            )
        except (PermanentBackendError, TransientBackendError):
            return  # not started yet, or gone: the status says what matters
        text = text if isinstance(text, str) else json.dumps(text)
        end = len(text) if final else text.rfind("\n") + 1
        if end <= self.seen:
            return
        start, self.seen = self.seen, end
        for line in text[start:end].splitlines():
            if line.strip():
                self.tail = (self.tail + [line.rstrip()])[-TAIL_LINES:]
                self.log(line.rstrip())


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def _waiting(pod: dict[str, Any]) -> dict[str, Any]:
    return (_container_status(pod).get("state") or {}).get("waiting") or {}


def _describe(state: dict[str, Any]) -> str:
    if not state.get("reason") or state.get("reason") == "ContainerCreating":
        return ""
    return f"{state['reason']}: {state.get('message') or ''}".strip(": ")


def _unschedulable(pod: dict[str, Any]) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason') or 'Unschedulable'}: {condition.get('message') or ''}".strip(": ")
    return ""


def _terminated(pod: dict[str, Any] | None) -> dict[str, Any]:
    return (_container_status(pod or {}).get("state") or {}).get("terminated") or {}


def _digest_of(pod: dict[str, Any] | None) -> str:
    match = re.search(r"sha256:[0-9a-f]{64}", _terminated(pod).get("message") or "")
    return match.group(0) if match else ""


def _why(pod: dict[str, Any]) -> str:
    terminated = _terminated(pod)
    if terminated:
        return f"buildah exited with {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'})"
    status = pod.get("status") or {}
    if status.get("reason"):  # DeadlineExceeded: activeDeadlineSeconds passed
        return f"{status['reason']}: {status.get('message') or ''}".strip(": ")
    return "the pod failed"
