"""Where a model runs. One small interface; the environment's ``target`` picks the implementation
(``backends.DEPLOY_TARGETS``), with its options from ``settings.DEPLOY_TARGET_OPTIONS``.

Every method is safe to call twice with the same spec: a worker killed half-way and restarted calls
them again and must end in the same state, with no duplicate resources.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.deployments.backends import DEPLOY_TARGETS, Log, configured_backend, load_backend

__all__ = [
    "ServingSpec",
    "Readiness",
    "DeploymentTarget",
    "get_target",
    "configured_target",
    "Log",
    "rollout_time_limit",
    "TrafficSplit",
    "PRIMARY",
    "CANDIDATE",
]

PRIMARY = "primary"  # the revision serves as the deployment itself (replacing the one before: all at once)
CANDIDATE = "candidate"  # the revision serves beside the primary until promoted (canary, blue-green, shadow)


@dataclass(frozen=True)
class ServingSpec:
    """Everything a target needs to run one revision of one deployment."""

    deployment: str  # DNS label, unique per environment: the Kubernetes object name, the local process key
    namespace: str  # Kubernetes namespace (ignored by the local target)
    environment: str
    revision: str  # e.g. "r12"
    model_name: str
    model_version: str
    model_uri: str  # models:/<name>/<version>
    image: str = ""  # registry/repo:tag, for container targets
    image_digest: str = ""
    model_dir: str = ""  # a local MLflow model directory, for the local target
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    env: dict[str, str] = field(default_factory=dict)  # extra SCORING_* settings
    progress_deadline_seconds: int = 600
    placement: str = PRIMARY  # PRIMARY or CANDIDATE: where the revision's objects live (Kubernetes: ``<name>-canary``)
    gateway: str = ""  # Kubernetes: the Gateway API Gateway (namespace/name) routes attach to; "": none installed


@dataclass(frozen=True)
class TrafficSplit:
    """How client traffic of one deployment's stable endpoint is shared now.

    ``weight`` percent of client requests go to ``candidate``, the rest to ``stable``; ``mirror_percent`` percent of
    the requests served by ``stable`` are also sent to ``candidate``, whose answers are discarded (shadow). With no
    ``candidate``, ``stable`` serves everything; with no ``stable`` (a first deploy), ``candidate`` does."""

    stable: ServingSpec | None
    candidate: ServingSpec | None = None
    weight: int = 0
    mirror_percent: int = 0


def rollout_time_limit(spec: ServingSpec, *, surge: int = 1) -> int:
    """How long a whole rollout may take: each batch of ``surge`` replicas may use the progress deadline (which
    counts from the last progress, not from the start), plus one deadline for the old pods to go."""
    replicas = max(spec.replicas, spec.min_replicas, 1)
    return spec.progress_deadline_seconds * (-(-replicas // max(surge, 1)) + 1)


@dataclass(frozen=True)
class Readiness:
    """What ``wait_ready`` found: the revision serves (ok), or why it cannot."""

    ok: bool
    message: str  # for people: "3/3 replicas available" or "image pull failed: unauthorized for <registry>"
    endpoint_url: str = ""


class DeploymentTarget(abc.ABC):
    """Runs scoring servers. Implementations take their settings as keyword arguments."""

    name: str = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abc.abstractmethod
    def apply(self, spec: ServingSpec, log: Log) -> None:
        """Create or update the resources serving ``spec``. Declarative: applying twice changes nothing."""

    @abc.abstractmethod
    def wait_ready(self, spec: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        """Watch the rollout of ``spec`` until it serves (ok) or cannot (not ok, with the reason).

        Never raises for a failed rollout; raises ``TransientBackendError`` only when the target itself
        cannot be reached."""

    @abc.abstractmethod
    def endpoint_url(self, spec: ServingSpec) -> str:
        """Base URL of the scoring server for ``spec`` (``POST {url}/invocations``)."""

    @abc.abstractmethod
    def delete(self, spec: ServingSpec, log: Log) -> None:
        """Remove everything ``apply`` created for ``spec.deployment``. Deleting what is gone is fine."""

    def is_running(self, spec: ServingSpec) -> bool | None:
        """Whether the revision's serving process runs now; None when the target does not say (the default: a
        cluster's own controller restarts what dies, and the rollout reports readiness)."""
        return None

    def retire(self, spec: ServingSpec, log: Log) -> None:  # noqa: B027 - optional, a no-op by default
        """Stop serving an older revision once a newer one is live (targets that replace in place: no-op)."""

    # ------------------------------------------------------------------ progressive delivery
    def stable_url(self, spec: ServingSpec) -> str:
        """The deployment's one URL for clients, the same for every revision (``endpoint_url`` is the revision's
        own, used for its smoke test). Targets that replace in place: the same."""
        return self.endpoint_url(spec)

    def traffic_refusal(self, strategy: str, *, gateway: str = "") -> str | None:
        """Why this target cannot run a rollout of type ``strategy`` (``all_at_once``, ``canary``, ``blue_green``,
        ``shadow``) in an environment whose Gateway API gateway is ``gateway`` ("" none), in a sentence for the
        person who asked; None when it can."""
        if strategy == "all_at_once":
            return None
        return f"The {self.name} target cannot split traffic, so it offers only all_at_once rollouts."

    def set_traffic(self, split: TrafficSplit, log: Log) -> None:  # noqa: B027 - a no-op where all is at once
        """Route the stable endpoint's traffic as ``split`` says. Declarative: setting it twice changes nothing."""

    def traffic(self, spec: ServingSpec) -> dict[str, int]:
        """The weights as applied now, revision label -> percent of client traffic, plus ``"mirror"`` -> percent
        mirrored to the candidate when shadowing (empty when the target does not split)."""
        return {}

    def promote(self, candidate: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        """Make ``candidate`` (serving as CANDIDATE) the deployment's primary: afterwards it serves all traffic of
        the stable endpoint with no candidate objects left. Targets whose candidate already is a full revision of
        its own (local processes) only route to it. Never raises for a failed rollout (see ``wait_ready``)."""
        primary = ServingSpec(**{**candidate.__dict__, "placement": PRIMARY})
        self.apply(primary, log)
        readiness = self.wait_ready(primary, log, timeout_seconds=timeout_seconds)
        if readiness.ok:
            self.set_traffic(TrafficSplit(stable=primary), log)
        return readiness


def get_target(name: str, **options: Any) -> DeploymentTarget:
    """The target ``name`` with exactly these options."""
    return load_backend(DEPLOY_TARGETS, name, **options)


def configured_target(name: str, *, cluster: str = "") -> DeploymentTarget:
    """The target ``name`` with its options from the settings; ``cluster`` (a name in ``KUBERNETES_CLUSTERS``) replaces
    the default cluster of the ``kubernetes`` target."""
    if cluster:
        options = {**getattr(settings, DEPLOY_TARGETS.options_setting, {}).get(name, {}), "cluster": cluster}
        return load_backend(DEPLOY_TARGETS, name, **options)
    return configured_backend(DEPLOY_TARGETS, name)
