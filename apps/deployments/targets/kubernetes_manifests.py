"""The Kubernetes target's manifests: pure functions rendering a revision's Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget and the deployment's HTTPRoute as dicts, and the labels that say who
owns them (``ownership_refusal``). No I/O: unit-testable and validated offline against the cluster's schemas."""

from __future__ import annotations

from typing import Any

from apps.deployments.naming import label_value
from apps.deployments.targets.base import CANDIDATE, ServingSpec, TrafficSplit
from apps.deployments.targets.kubernetes_traffic import object_name, route_manifest

__all__ = [
    "FIELD_MANAGER",
    "OWNER_ENVIRONMENT_LABEL",
    "OWNER_DEPLOYMENT_LABEL",
    "CONTAINER_PORT",
    "ROLE_LABEL",
    "Manifest",
    "field_manager",
    "ownership_refusal",
    "owned_by_another",
    "recommended_labels",
    "selector_labels",
    "shared_selector",
    "render_manifests",
    "render_deployment",
    "render_service",
    "render_hpa",
    "render_pdb",
    "render_route",
]

FIELD_MANAGER = "modelplane"  # + "-<environment>": field_manager()
OWNER_ENVIRONMENT_LABEL = "modelplane.io/environment"
OWNER_DEPLOYMENT_LABEL = "modelplane.io/deployment"
CONTAINER_NAME = "scoring-server"
CONTAINER_PORT = 8080
HEALTH_PORT = 8081  # the scoring image's SCORING_HEALTH_PORT: probes answered outside the predict path
SERVICE_PORT = 80
RUN_AS_USER = 10001  # the scoring image's user (scoring-image/Dockerfile)
CPU_TARGET_PERCENT = 70
TMP_VOLUME = "tmp"
TMP_SIZE_LIMIT = "1Gi"
REVISION_LABEL = "modelplane.io/revision"
ROLE_LABEL = "modelplane.io/role"  # on a candidate's objects and pods only (the primary's pods keep their labels)
ANNOTATION_MODEL_URI = "modelplane.io/model-uri"
ANNOTATION_REVISION = "modelplane.io/revision"
ANNOTATION_IMAGE_DIGEST = "modelplane.io/image-digest"
ANNOTATION_CANDIDATE_REVISION = "modelplane.io/candidate-revision"  # on the HTTPRoute, while it splits
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
DEFAULT_ENDPOINT = "http://{deployment}.{namespace}.svc.cluster.local"
DEFAULT_ROUTE_PATH = "/{namespace}/{deployment}"  # an HTTPRoute's path prefix on the Gateway, rewritten to "/"

Manifest = dict[str, Any]


# ---------------------------------------------------------------------------------------------- rendering


def field_manager(spec: ServingSpec) -> str:
    """The server-side apply field manager: one per environment, so a cluster names who owns a field."""
    return f"{FIELD_MANAGER}-{spec.environment}"


def ownership_labels(spec: ServingSpec) -> dict[str, str]:
    return {OWNER_ENVIRONMENT_LABEL: label_value(spec.environment), OWNER_DEPLOYMENT_LABEL: spec.deployment}


def ownership_refusal(live: Manifest, spec: ServingSpec, verb: str) -> str | None:
    """Why ``spec`` must not ``verb`` the live object (it belongs to someone else), or None when it is ours."""
    labels = (live.get("metadata") or {}).get("labels") or {}
    if all(labels.get(key) == value for key, value in ownership_labels(spec).items()):
        return None
    environment, deployment = labels.get(OWNER_ENVIRONMENT_LABEL), labels.get(OWNER_DEPLOYMENT_LABEL)
    if environment:
        owner = f"deployment {deployment or '?'} of environment {environment}"
    else:
        owner = f"something else (it has no {OWNER_ENVIRONMENT_LABEL} label; label it to adopt it)"
    kind, name = live.get("kind", "object"), (live.get("metadata") or {}).get("name", spec.deployment)
    return (
        f"{kind} {spec.namespace}/{name} belongs to {owner}; {spec.environment} will not {verb} it. "
        "Choose another deployment name, or give each environment its own namespace."
    )


def selector_labels(spec: ServingSpec) -> dict[str, str]:
    """The immutable part: a Deployment's selector cannot change after creation, so no version in it. A candidate's
    pods are an instance of their own (``<name>-canary``), apart from the primary Deployment's and Service's."""
    return {"app.kubernetes.io/name": "scoring-server", "app.kubernetes.io/instance": object_name(spec)}


def shared_selector(spec: ServingSpec) -> dict[str, str]:
    """The primary Service's selector while a canary shares it without Gateway API: primary and candidate pods."""
    return {"app.kubernetes.io/name": "scoring-server", **ownership_labels(spec)}


def recommended_labels(spec: ServingSpec) -> dict[str, str]:
    labels = {
        **selector_labels(spec),
        **ownership_labels(spec),
        "app.kubernetes.io/version": label_value(spec.model_version),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "modelplane",
        "app.kubernetes.io/managed-by": "modelplane",
    }
    if spec.placement == CANDIDATE:
        labels[ROLE_LABEL] = CANDIDATE
    return labels


def _annotations(spec: ServingSpec) -> dict[str, str]:
    return {
        ANNOTATION_MODEL_URI: spec.model_uri,
        ANNOTATION_REVISION: spec.revision,
        ANNOTATION_IMAGE_DIGEST: spec.image_digest,
    }


def _metadata(spec: ServingSpec) -> dict[str, Any]:
    return {
        "name": object_name(spec),
        "namespace": spec.namespace,
        "labels": recommended_labels(spec),
        "annotations": _annotations(spec),
    }


def _container_env(spec: ServingSpec) -> list[dict[str, str]]:
    env = {
        "SCORING_HOST": "0.0.0.0",
        "SCORING_PORT": str(CONTAINER_PORT),
        # Readiness turns 503 at SIGTERM; keep serving while the endpoint removal reaches every proxy.
        "SCORING_SHUTDOWN_DELAY_S": "5",
        **spec.env,
        "SCORING_DEPLOYMENT": spec.deployment,
        "SCORING_MODEL_NAME": spec.model_name,
        "SCORING_MODEL_VERSION": spec.model_version,
        "SCORING_REVISION": spec.revision,
        "SCORING_IMAGE_DIGEST": spec.image_digest,
    }
    return [{"name": name, "value": value} for name, value in env.items()]


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "health"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: ServingSpec) -> dict[str, Any]:
    return {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ],
        "env": _container_env(spec),
        "resources": {
            "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
            "limits": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        },
        # /health/live answers as soon as the port opens, also while the model loads (docs/scoring.md), so
        # no startup probe is needed; /health/ready waits for the loaded model's warm-up. Both on the health port,
        # answered by a thread of their own, so a long predict batch cannot time them out.
        "livenessProbe": _probe("/health/live", period=10, failures=3),
        "readinessProbe": _probe("/health/ready", period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The one writable place (the supervisor's metrics directory, libraries' temporary files).
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
    }


def render_deployment(
    spec: ServingSpec,
    *,
    replicas: int | None = None,
    image_pull_secrets: tuple[str, ...] = (),
    autoscaled: bool = False,
) -> Manifest:
    """The Deployment. ``replicas`` defaults to the spec's, clamped to the autoscaling bounds (a candidate's to
    1..max: the traffic split sizes it); left out when ``autoscaled`` (the HorizontalPodAutoscaler owns the field,
    and applying it would fight the autoscaler)."""
    if replicas is None:
        replicas = spec.replicas
    least = 1 if spec.placement == CANDIDATE else spec.min_replicas
    replicas = min(max(replicas, least), max(spec.max_replicas, least))
    pod_labels = {**recommended_labels(spec), REVISION_LABEL: label_value(spec.revision)}
    pod_spec: dict[str, Any] = {
        "containers": [_container(spec)],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
        # The scoring image is Linux-only: keep it off Windows node pools.
        "nodeSelector": {"kubernetes.io/os": "linux"},
        # Replicas of the new revision spread over the zones, so one zone's outage leaves some serving.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector_labels(spec)},
                "matchLabelKeys": ["pod-template-hash"],
            }
        ],
        # SCORING_SHUTDOWN_DELAY_S (5 s) + the server's drain timeout (30 s) + margin.
        "terminationGracePeriodSeconds": 45,
    }
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in image_pull_secrets]
    manifest: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _annotations(spec)},
                "spec": pod_spec,
            },
        },
    }
    if autoscaled:
        del manifest["spec"]["replicas"]
    return manifest


def render_service(spec: ServingSpec, *, shared: bool = False) -> Manifest:
    """The revision's Service; ``shared``: the primary's, selecting the candidate's pods too (``shared_selector``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "type": "ClusterIP",
            "selector": shared_selector(spec) if shared else selector_labels(spec),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_hpa(spec: ServingSpec) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name(spec)},
            "minReplicas": spec.min_replicas,
            "maxReplicas": max(spec.max_replicas, spec.min_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT},
                    },
                }
            ],
        },
    }


def render_pdb(spec: ServingSpec) -> Manifest:
    # maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block every node drain.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        # AlwaysAllow: pods that are not ready (a bad revision) do not block node drains and AKS upgrades.
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(spec)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render_manifests(
    spec: ServingSpec,
    *,
    replicas: int | None = None,
    image_pull_secrets: tuple[str, ...] = (),
    autoscaled: bool = False,
) -> list[Manifest]:
    """Everything ``apply`` sends, in the order it sends it. A candidate gets its Service and Deployment only: it
    serves for the length of a rollout, sized by the traffic split, and is not autoscaled."""
    deployment = render_deployment(
        spec, replicas=replicas, image_pull_secrets=image_pull_secrets, autoscaled=autoscaled
    )
    if spec.placement == CANDIDATE:
        return [render_service(spec), deployment]
    return [render_service(spec), render_pdb(spec), deployment, render_hpa(spec)]


def render_route(split: TrafficSplit, *, path_prefix: str = "/", hostnames: tuple[str, ...] = ()) -> Manifest:
    """The deployment's HTTPRoute for ``split`` (``kubernetes_traffic.route_manifest``), owned like its objects."""
    base = split.stable or split.candidate
    if base is None:
        raise ValueError("a traffic split needs a stable or a candidate revision")
    labels = {
        **ownership_labels(base),
        "app.kubernetes.io/part-of": "modelplane",
        "app.kubernetes.io/managed-by": "modelplane",
    }
    annotations = {ANNOTATION_REVISION: (split.stable or base).revision}
    if split.candidate is not None:
        annotations[ANNOTATION_CANDIDATE_REVISION] = split.candidate.revision
    return route_manifest(
        split, labels=labels, annotations=annotations, port=SERVICE_PORT, path_prefix=path_prefix, hostnames=hostnames
    )


def owned_by_another(live: Manifest, manager: str, *path: str) -> bool:
    """Whether a field manager other than ``manager`` owns ``path`` of the live object (its managedFields)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        node = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(f"f:{key}") if isinstance(node, dict) else None
        if node is not None and entry.get("manager") != manager:
            return True
    return False
