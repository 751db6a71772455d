"""Build inside the target cluster: a Kubernetes Job runs the kaniko executor, which builds the context's Dockerfile
and pushes the image itself. The worker hands the context over through a shared volume (a PersistentVolumeClaim,
e.g. Azure Files, that the worker mounts at ``context_dir`` and the Job mounts read-only).

Options (from ``settings.IMAGE_BUILDER_OPTIONS["kaniko"]``); ``context_pvc`` and ``context_dir`` are required:

``api_url``/``token``/``verify_ssl``/``ca_cert``, else ``kubeconfig`` (+ ``context``), else in-cluster config:
                        the cluster (``kube.CONNECTION_OPTIONS``), configured as for the ``kubernetes`` target
``namespace``           where build Jobs run (default ``modelplane-builds``)
``context_pvc``         the claim the Job mounts at /workspace
``context_dir``         where the worker sees that same volume
``kaniko_image``        the executor image (default ``gcr.io/kaniko-project/executor:v1.23.2``)
``registry_secret``     a ``kubernetes.io/dockerconfigjson`` Secret kaniko pushes with (mounted at /kaniko/.docker)
``service_account``     the Job's service account (workload identity for ACR, for example)
``tls_verify``, ``insecure_registries``, ``username``, ``password``  for ``exists`` (and ``--skip-tls-verify``)
``timeout``             seconds a build may take (the Job's activeDeadlineSeconds; default 3600)
``poll_interval``       seconds between Job status polls (default 3)
``cpu``/``memory``      the executor's requests and limits (default 1 CPU, 2Gi)

The Job is named after the image tag (the context digest), so a worker killed mid-build finds and follows the same
Job when the step runs again instead of starting a second build. The cluster is reached through
``apps.deployments.kube``, the client the ``kubernetes`` target uses too.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from apps.deployments.backends import Log, PermanentBackendError, TransientBackendError, truthy
from apps.deployments.builders.base import BuildRequest, ImageBuilder
from apps.deployments.builders.image_registry import ImageRegistryClient, parse_image
from apps.deployments.kube import KubernetesClient, status_of

__all__ = ["KanikoImageBuilder", "render_job", "job_name"]

DEFAULT_IMAGE = "gcr.io/kaniko-project/executor:v1.23.2"
CONTAINER = "kaniko"
WORKSPACE = "/workspace"
TAIL_LINES = 25


def job_name(image: str) -> str:
    """``kaniko-<tag>``: one Job per image, a valid DNS label (at most 63 characters)."""
    tag = re.sub(r"[^a-z0-9-]+", "-", parse_image(image).reference.lower()).strip("-")
    return f"kaniko-{tag}"[:63].rstrip("-")


def render_job(request: BuildRequest, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The build Job: one kaniko container, no retries (a failed build is reported, not repeated)."""
    args = [
        f"--context=dir://{WORKSPACE}/{name}",
        f"--dockerfile={WORKSPACE}/{name}/Dockerfile",
        f"--destination={request.image}",
        "--digest-file=/dev/termination-log",  # the digest comes back in the pod's terminated state
        "--push-retry=2",
    ]
    args += [f"--build-arg={key}={value}" for key, value in request.build_args.items()]
    args += [f"--label={key}={value}" for key, value in request.labels.items()]
    if not truthy(options.get("tls_verify", True)):
        args += ["--skip-tls-verify", "--insecure"]
    mounts = [{"name": "context", "mountPath": WORKSPACE, "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {"name": "context", "persistentVolumeClaim": {"claimName": options["context_pvc"], "readOnly": True}}
    ]
    if options.get("registry_secret"):
        mounts.append({"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True})
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": options["registry_secret"],
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    resources = {"cpu": str(options.get("cpu") or "1"), "memory": str(options.get("memory") or "2Gi")}
    labels = {
        "app.kubernetes.io/name": "kaniko",
        "app.kubernetes.io/component": "image-build",
        "app.kubernetes.io/managed-by": "modelplane",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": CONTAINER,
                "image": str(options.get("kaniko_image") or DEFAULT_IMAGE),
                "args": args,
                "volumeMounts": mounts,
                "resources": {"requests": resources, "limits": resources},
                "terminationMessagePolicy": "File",
            }
        ],
        "volumes": volumes,
    }
    if options.get("service_account"):
        pod_spec["serviceAccountName"] = options["service_account"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "annotations": {"modelplane.io/image": request.image}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(float(options.get("timeout") or 3600)),
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class KanikoImageBuilder(ImageBuilder):
    name = "kaniko"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        missing = [key for key in ("context_pvc", "context_dir") if not options.get(key)]
        if missing:
            names = ", ".join(f"KANIKO_{key.upper()}" for key in missing)
            raise PermanentBackendError(f"the kaniko image builder is not configured: set {names}")
        self.namespace = str(options.get("namespace") or "modelplane-builds")
        self.timeout = float(options.get("timeout") or 3600)
        self.poll_interval = float(options.get("poll_interval") or 3)
        self.registry = ImageRegistryClient(
            verify=truthy(options.get("tls_verify", True)),
            insecure_registries=list(options.get("insecure_registries") or ()),
            username=str(options.get("username") or ""),
            password=str(options.get("password") or ""),
        )
        self.cluster = KubernetesClient(options)

    # ------------------------------------------------------------------ interface
    def exists(self, image: str) -> bool:
        """HEAD the manifest in the registry (the worker must reach it, as the cluster does)."""
        return self.registry.manifest_digest(image) is not None

    def build_and_push(self, request: BuildRequest, log: Log) -> str:
        """Run (or find and follow) the image's build Job to its end; return the digest kaniko pushed.

        A Job left from a failed attempt is replaced; a running or finished one is followed, not duplicated.
        """
        if not (request.context_dir / "Dockerfile").is_file():
            raise PermanentBackendError(f"the build context {request.context_dir} has no Dockerfile")
        batch = self.cluster.batch()
        name = job_name(request.image)
        job = self._read_job(batch, name)
        if job is not None and _failed(job):
            log(f"replacing the failed build Job {self.namespace}/{name}")
            what, delete = "delete the failed build Job", batch.delete_namespaced_job
            self.cluster.call(what, delete, name, self.namespace, propagation_policy="Background")
            job = None
        if job is None:
            self._hand_over(request, name)
            body = render_job(request, name, self.options)
            try:
                self.cluster.call("create the build Job", batch.create_namespaced_job, self.namespace, body)
                log(f"created build Job {self.namespace}/{name}")
            except PermanentBackendError as exc:
                if status_of(exc) != 409:  # another worker created it a moment ago: follow that one
                    raise
        else:
            log(f"following the existing build Job {self.namespace}/{name}")
        digest = self._follow(batch, name, request.image, log)
        shutil.rmtree(Path(self.options["context_dir"]) / name, ignore_errors=True)
        return digest

    # ------------------------------------------------------------------ steps
    def _hand_over(self, request: BuildRequest, name: str) -> None:
        """Copy the context onto the shared volume, where the Job will find it."""
        dest = Path(self.options["context_dir"]) / name
        try:
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(request.context_dir, dest)
        except OSError as exc:
            raise TransientBackendError(f"cannot write the build context to {dest}: {exc.strerror}") from exc

    def _read_job(self, batch: Any, name: str) -> dict[str, Any] | None:
        return self.cluster.read("read the build Job", batch.read_namespaced_job, name, self.namespace)

    def _follow(self, batch: Any, name: str, image: str, log: Log) -> str:
        core = self.cluster.core()
        deadline = time.monotonic() + self.timeout + 60
        stream = _PodLog(self, core, log)
        while True:
            job = self._read_job(batch, name)
            if job is None:
                raise TransientBackendError(f"the build Job {self.namespace}/{name} disappeared; will build again")
            pod = self._pod(core, name)
            if pod is not None:
                stream.poll(pod["metadata"]["name"], final=False)
            if (job.get("status") or {}).get("succeeded"):
                if pod is not None:
                    stream.poll(pod["metadata"]["name"], final=True)
                return _digest_of(pod) or self.registry.manifest_digest(image) or ""
            if _failed(job):
                if pod is not None:
                    stream.poll(pod["metadata"]["name"], final=True)
                raise PermanentBackendError(
                    f"the build Job {self.namespace}/{name} failed: {_why(job, pod)}; last lines:\n"
                    + "\n".join(stream.tail)
                )
            if time.monotonic() > deadline:
                raise TransientBackendError(f"the build Job {self.namespace}/{name} did not finish in time")
            time.sleep(self.poll_interval)

    def _pod(self, core: Any, name: str) -> dict[str, Any] | None:
        pods = self.cluster.call(
            "list the build pods", core.list_namespaced_pod, self.namespace, label_selector=f"job-name={name}"
        )
        items = sorted(pods.get("items") or [], key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return items[-1] if items else None


class _PodLog:
    """Pass on the executor's new log lines on every poll (the log is re-read whole: builds log little)."""

    def __init__(self, builder: KanikoImageBuilder, core: Any, log: Log) -> None:
        self.builder, self.core, self.log = builder, core, log
        self.seen: dict[str, int] = {}
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
        start = self.seen.get(pod, 0)
        end = len(text) if final else text.rfind("\n") + 1
        if end <= start:
            return
        self.seen[pod] = end
        for line in text[start:end].splitlines():
            if line.strip():
                self.tail = (self.tail + [line.rstrip()])[-TAIL_LINES:]
                self.log(line.rstrip())


def _failed(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return bool(status.get("failed")) or conditions.get("Failed") == "True"


def _terminated(pod: dict[str, Any] | None) -> dict[str, Any]:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return (status.get("state") or {}).get("terminated") or {}
    return {}


def _digest_of(pod: dict[str, Any] | None) -> str:
    match = re.search(r"sha256:[0-9a-f]{64}", _terminated(pod).get("message") or "")
    return match.group(0) if match else ""


def _why(job: dict[str, Any], pod: dict[str, Any] | None) -> str:
    terminated = _terminated(pod)
    if terminated:
        return f"kaniko exited with {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'})"
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed":
            return f"{condition.get('reason')}: {condition.get('message') or ''}".strip(": ")
    return "the Job reports a failed pod"
