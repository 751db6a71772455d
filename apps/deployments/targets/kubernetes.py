"""The Kubernetes target: a Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget per deployment.

Rendering lives in ``kubernetes_manifests`` (pure functions, unit-testable and validated offline), traffic splits in
``kubernetes_traffic``. ``apply`` uses server-side apply with a field manager naming the environment, so applying the
same spec twice changes nothing and a new revision updates the objects in place (a rolling update). Environments
may share a namespace: every object carries ownership labels (environment, deployment), and ``apply`` and
``delete`` touch only objects whose labels name this environment's deployment (``ownership_refusal``).
``wait_ready`` polls the Deployment and the new revision's pods and turns what the kubelet and the scheduler report
into sentences a person can act on (``kubernetes_pods``). The cluster is reached through
``apps.deployments.kube`` (shared with the buildah builder).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from apps.deployments.backends import PermanentBackendError
from apps.deployments.kube import ClusterAccessError, KubernetesClient, status_of
from apps.deployments.naming import label_value
from apps.deployments.targets.base import (
    CANDIDATE,
    PRIMARY,
    DeploymentTarget,
    Log,
    Readiness,
    ServingSpec,
    TrafficSplit,
)
from apps.deployments.targets.kubernetes_manifests import (
    ANNOTATION_REVISION,
    APPLY_CONTENT_TYPE,
    DEFAULT_ENDPOINT,
    DEFAULT_ROUTE_PATH,
    FIELD_MANAGER,
    REVISION_LABEL,
    Manifest,
    field_manager,
    owned_by_another,
    ownership_refusal,
    render_deployment,
    render_manifests,
    render_route,
    render_service,
    selector_labels,
    shared_selector,
)
from apps.deployments.targets.kubernetes_pods import conditions, diagnose_pods, involved, latest_warning, unschedulable
from apps.deployments.targets.kubernetes_traffic import (
    GATEWAY_GROUP,
    ROUTE_PLURAL,
    ROUTE_VERSION,
    candidate_replicas,
    object_name,
    replica_shares,
    route_conditions,
    route_shares,
    split_gateway,
)

__all__ = ["KubernetesTarget", "RouteApi"]


class RouteApi:
    """HTTPRoutes through ``CustomObjectsApi`` with the typed APIs' method shapes (``*_namespaced_route(name,
    namespace, ...)``), so the target reads, applies and deletes them as it does its other objects."""

    def __init__(self, custom: Any) -> None:
        self.custom = custom

    def read_namespaced_route(self, name: str, namespace: str, **kwargs: Any) -> Any:
        return self.custom.get_namespaced_custom_object(
            GATEWAY_GROUP, ROUTE_VERSION, namespace, ROUTE_PLURAL, name, **kwargs
        )

    def patch_namespaced_route(self, name: str, namespace: str, body: Manifest, **kwargs: Any) -> Any:
        # Strict: a field this Gateway API version does not know is refused rather than silently dropped.
        return self.custom.patch_namespaced_custom_object(
            GATEWAY_GROUP, ROUTE_VERSION, namespace, ROUTE_PLURAL, name, body, field_validation="Strict", **kwargs
        )

    def delete_namespaced_route(self, name: str, namespace: str, **kwargs: Any) -> Any:
        return self.custom.delete_namespaced_custom_object(
            GATEWAY_GROUP, ROUTE_VERSION, namespace, ROUTE_PLURAL, name, **kwargs
        )


# ---------------------------------------------------------------------------------------------- the target
class KubernetesTarget(DeploymentTarget):
    """Options: the cluster's (``kube.CONNECTION_OPTIONS``: ``cluster``, a name in ``KUBERNETES_CLUSTERS``; else the
    default cluster's ``api_url`` + ``token``, ``verify_ssl``, ``ca_cert``, else ``kubeconfig`` + ``context``, else
    the in-cluster service account). Also ``endpoint_url_template``
    (``{deployment}``, ``{namespace}``: a revision's own URL), ``stable_url_template`` (the deployment's URL for
    clients, default ``endpoint_url_template``; with Gateway API, the Gateway's address and the route's path),
    ``route_path_template`` and ``route_hostname_template`` (what the deployment's HTTPRoute matches),
    ``route_accept_timeout_seconds`` (how long to wait for the Gateway's controller to accept a route, 30 s),
    ``image_pull_secrets``, ``poll_interval_seconds``,
    ``request_timeout_seconds``, ``log_tail_lines``, ``unschedulable_grace_seconds``, ``image_pull_grace_seconds``
    (``diagnose_pods``)."""

    name = "kubernetes"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.endpoint_url_template: str = options.get("endpoint_url_template") or DEFAULT_ENDPOINT
        self.stable_url_template: str = options.get("stable_url_template") or self.endpoint_url_template
        self.route_path_template: str = options.get("route_path_template") or DEFAULT_ROUTE_PATH
        self.route_hostname_template: str = options.get("route_hostname_template") or ""
        self.route_accept_timeout: float = float(options.get("route_accept_timeout_seconds", 30.0))
        secrets = options.get("image_pull_secrets") or ()
        if isinstance(secrets, str):
            secrets = [s.strip() for s in secrets.split(",") if s.strip()]
        self.image_pull_secrets: tuple[str, ...] = tuple(secrets)
        self.poll_interval: float = float(options.get("poll_interval_seconds", 2.0))
        self.request_timeout: float = float(options.get("request_timeout_seconds", 30.0))
        self.log_tail_lines: int = int(options.get("log_tail_lines", 10))
        self.unschedulable_grace: float = float(options.get("unschedulable_grace_seconds", 180.0))
        self.image_pull_grace: float = float(options.get("image_pull_grace_seconds", 180.0))
        self.cluster = KubernetesClient(options, request_timeout=self.request_timeout)

    # ------------------------------------------------------------------ cluster access
    def _apis(self) -> dict[str, tuple[Any, str]]:
        """kind -> (typed API, method suffix)."""
        cluster = self.cluster
        return {
            "Service": (cluster.core(), "service"),
            "PodDisruptionBudget": (cluster.policy(), "pod_disruption_budget"),
            "Deployment": (cluster.apps(), "deployment"),
            "HorizontalPodAutoscaler": (cluster.autoscaling(), "horizontal_pod_autoscaler"),
        }

    def _read_deployment(self, spec: ServingSpec) -> Manifest | None:
        read = self.cluster.apps().read_namespaced_deployment
        return self.cluster.read("read the Deployment", read, object_name(spec), spec.namespace)

    def _api(self, kind: str) -> tuple[Any, str]:
        """(typed API, method suffix) of ``kind``; HTTPRoute only when asked, as a cluster without Gateway API
        (or a Role without httproutes) must still serve environments that use none."""
        if kind == "HTTPRoute":
            return RouteApi(self.cluster.custom()), "route"
        return self._apis()[kind]

    def _read(self, kind: str, spec: ServingSpec) -> Manifest | None:
        api, suffix = self._api(kind)
        found = self.cluster.read(
            f"read the {kind}", getattr(api, f"read_namespaced_{suffix}"), object_name(spec), spec.namespace
        )
        if found is not None:
            found.setdefault("kind", kind)
        return found

    def _check_ownership(self, spec: ServingSpec) -> Manifest | None:
        """Refuse (before writing anything) when an object of that name belongs to another deployment; returns
        the live Deployment."""
        kinds = ("Service", "Deployment") if spec.placement == CANDIDATE else tuple(self._apis())
        live: dict[str, Manifest | None] = {kind: self._read(kind, spec) for kind in kinds}
        for obj in live.values():
            if obj is not None and (refusal := ownership_refusal(obj, spec, "overwrite")):
                raise PermanentBackendError(refusal)
        return live["Deployment"]

    def _apply_one(self, spec: ServingSpec, manifest: Manifest, log: Log) -> Manifest:
        """Server-side apply without force: a field another manager owns conflicts (409). A conflict with a
        person's or a controller's edit (kubectl, the autoscaler) is taken over, as before; one with another
        environment's manager is refused, naming it."""
        kind = manifest["kind"]
        api, suffix = self._api(kind)
        patch = getattr(api, f"patch_namespaced_{suffix}")
        name = manifest["metadata"]["name"]
        args = (f"apply the {kind}", patch, name, spec.namespace, manifest)
        options = {"field_manager": field_manager(spec), "_content_type": APPLY_CONTENT_TYPE}
        try:
            return self.cluster.call(*args, **options)
        except PermanentBackendError as exc:
            if status_of(exc) != 409:
                raise
            managers = set(re.findall(r'conflicts? with "([^"]+)"', exc.message))
            rivals = sorted(m for m in managers if m.startswith(f"{FIELD_MANAGER}-") and m != field_manager(spec))
            if rivals:
                raise PermanentBackendError(
                    f"{kind} {spec.namespace}/{name} is also managed by {', '.join(rivals)}; "
                    f"{spec.environment} will not take it over: {exc.message}"
                ) from exc
            log(f"taking over fields of {kind} {spec.namespace}/{name} from {', '.join(sorted(managers))}")
            return self.cluster.call(*args, force=True, **options)

    @contextlib.contextmanager
    def _access(self, spec: ServingSpec) -> Iterator[None]:
        """A cluster that refuses our credentials or our request fails the step at once, naming the environment
        (the message names the cluster): no retry can help until someone fixes the credentials or the Role."""
        try:
            yield
        except ClusterAccessError as exc:
            error = ClusterAccessError(f"Environment {spec.environment}: {exc.message}")
            error.status = status_of(exc)  # type: ignore[attr-defined]
            raise error from exc

    # ------------------------------------------------------------------ the interface
    def apply(self, spec: ServingSpec, log: Log) -> None:
        with self._access(spec):
            self._apply(spec, log)

    def _apply(self, spec: ServingSpec, log: Log) -> None:
        if not spec.image:
            raise PermanentBackendError(f"no image to deploy for {spec.revision}")
        live = self._check_ownership(spec)
        # Keep the replica count the autoscaler chose: applying spec.replicas again would scale down mid-rollout.
        # Once the autoscaler owns the field, leave it out, so an apply never fights (or overrides) a scale.
        replicas = ((live or {}).get("spec") or {}).get("replicas")
        autoscaled = live is not None and owned_by_another(live, field_manager(spec), "spec", "replicas")
        manifests = render_manifests(
            spec, replicas=replicas, image_pull_secrets=self.image_pull_secrets, autoscaled=autoscaled
        )
        for manifest in manifests:
            result = self._apply_one(spec, manifest, log)
            meta = result.get("metadata") or {}
            kind = manifest["kind"]
            log(f"applied {kind} {spec.namespace}/{meta.get('name')} (resourceVersion {meta.get('resourceVersion')})")

    def wait_ready(self, spec: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        with self._access(spec):
            return self._wait_ready(spec, log, timeout_seconds=timeout_seconds)

    def _wait_ready(self, spec: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        deadline = time.monotonic() + timeout_seconds
        last_progress = ""
        waiting_since: dict[str, datetime] = {}
        while True:
            outcome, progress = self._check_rollout(spec, waiting_since)
            if progress != last_progress:
                log(progress)
                last_progress = progress
            if outcome is not None:
                if not outcome.ok:
                    log(outcome.message)
                return outcome
            if time.monotonic() >= deadline:
                message = f"rollout not finished after {timeout_seconds:g} s: {progress}"
                log(message)
                return Readiness(ok=False, message=message)
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _check_rollout(self, spec: ServingSpec, waiting_since: dict[str, datetime]) -> tuple[Readiness | None, str]:
        """One look at the rollout: (a final result or None, a progress line)."""
        deployment = self._read_deployment(spec)
        if deployment is None:
            message = f"Deployment {spec.namespace}/{object_name(spec)} does not exist"
            return Readiness(ok=False, message=message), message
        status = deployment.get("status") or {}
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        total = int(status.get("replicas") or 0)
        progress = f"{updated}/{desired} replicas updated, {available} available"
        observed = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        if observed and updated >= desired and available >= desired and total <= updated:
            url = self.endpoint_url(spec)
            return Readiness(ok=True, message=f"{available}/{desired} replicas available", endpoint_url=url), progress
        failure, hint, scaling = self._diagnose(spec, waiting_since)
        if scaling:
            progress += f"; waiting for a new node ({scaling})"
        if failure:
            return Readiness(ok=False, message=failure), progress
        found = conditions(deployment)
        progressing = found.get("Progressing", {})
        if (
            observed
            and progressing.get("status") == "False"
            and progressing.get("reason") == "ProgressDeadlineExceeded"
        ):
            deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds", spec.progress_deadline_seconds)
            message = f"rollout did not progress in {deadline} s" + (f" (last warning: {hint})" if hint else "")
            return Readiness(ok=False, message=message), progress
        replica_failure = found.get("ReplicaFailure", {})
        if replica_failure.get("status") == "True":
            message = f"pods cannot be created: {replica_failure.get('message') or replica_failure.get('reason')}"
            return Readiness(ok=False, message=message), progress
        return None, progress

    def _diagnose(self, spec: ServingSpec, waiting_since: dict[str, datetime]) -> tuple[str | None, str, str]:
        """(why the new revision's pods cannot run or None, the latest warning event about them or "")."""
        core = self.cluster.core()
        selector = ",".join(
            f"{key}={value}"
            for key, value in {**selector_labels(spec), REVISION_LABEL: label_value(spec.revision)}.items()
        )
        pods = self.cluster.call("list pods", core.list_namespaced_pod, spec.namespace, label_selector=selector)
        pods = pods["items"]
        if not pods:
            return None, "", ""
        events = self.cluster.call(
            "list events", core.list_namespaced_event, spec.namespace, field_selector="involvedObject.kind=Pod"
        )["items"]
        names = {pod["metadata"]["name"] for pod in pods}
        events = [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
        failure = diagnose_pods(
            pods,
            events,
            read_log=lambda pod, container: self._log_tail(spec, pod, container),
            unschedulable_grace_seconds=self.unschedulable_grace,
            image_pull_grace_seconds=self.image_pull_grace,
            waiting_since=waiting_since,
        )
        unplaced = {pod["metadata"]["name"] for pod in pods if unschedulable(pod)}
        scaling = [e for e in events if e.get("reason") == "TriggeredScaleUp" and involved(e) in unplaced]
        return failure, latest_warning(events), (scaling[-1].get("message") or "").strip() if scaling else ""

    def _log_tail(self, spec: ServingSpec, pod: str, container: str) -> str:
        """The last lines of the crashed run (``previous``), else of the current one; empty if none."""
        core = self.cluster.core()
        for previous in (True, False):
            try:
                text = self.cluster.call(
                    "read the container log",
                    core.read_namespaced_pod_log,
                    pod,
                    spec.namespace,
                    container=container,
                    previous=previous,
                    tail_lines=self.log_tail_lines,
                )
            except PermanentBackendError:
                continue
            if isinstance(text, str) and text.strip():
                return "\n".join(text.strip().splitlines()[-self.log_tail_lines :])
        return ""

    def endpoint_url(self, spec: ServingSpec) -> str:
        return self.endpoint_url_template.format(deployment=object_name(spec), namespace=spec.namespace).rstrip("/")

    def delete(self, spec: ServingSpec, log: Log) -> None:
        """Deletes this deployment's objects only: one of that name owned by another environment's deployment
        (a shared namespace) is left alone, with a log line naming its owner."""
        with self._access(spec):
            self._delete(spec, log)

    def _delete(self, spec: ServingSpec, log: Log) -> None:
        primary, candidate = replace(spec, placement=PRIMARY), replace(spec, placement=CANDIDATE)
        if spec.gateway:
            self._delete_route(primary, log)
        self._delete_objects(candidate, log)
        self._delete_objects(primary, log)

    def _delete_objects(self, spec: ServingSpec, log: Log) -> None:
        """The objects ``spec`` serves from (its role's), those of another owner left alone."""
        apis = self._apis()
        if spec.placement == CANDIDATE:
            kinds: tuple[str, ...] = ("Deployment", "Service")
        else:
            kinds = ("HorizontalPodAutoscaler", "Deployment", "PodDisruptionBudget", "Service")
        for kind in kinds:
            api, suffix = apis[kind]
            name = object_name(spec)
            live = self._read(kind, spec)
            if live is None and spec.placement == CANDIDATE:
                continue  # most deployments never had one: no "already gone" lines for them
            if live is not None and (refusal := ownership_refusal(live, spec, "delete")):
                log(f"left alone: {refusal}")
                continue
            try:
                self.cluster.call(
                    f"delete the {kind}",
                    getattr(api, f"delete_namespaced_{suffix}"),
                    name,
                    spec.namespace,
                    propagation_policy="Background",
                )
            except PermanentBackendError as exc:
                if status_of(exc) != 404:
                    raise
                log(f"{kind} {spec.namespace}/{name} already gone")
            else:
                log(f"deleted {kind} {spec.namespace}/{name}")

    def retire(self, spec: ServingSpec, log: Log) -> None:
        """A candidate's objects are deleted (a rollout aborted, or promoted into the primary). A primary's: a
        rolling update replaced the older revision's pods in place, nothing is left to stop."""
        if spec.placement == CANDIDATE:
            with self._access(spec):
                self._delete_objects(spec, log)

    # ------------------------------------------------------------------ progressive delivery
    def stable_url(self, spec: ServingSpec) -> str:
        return self.stable_url_template.format(deployment=spec.deployment, namespace=spec.namespace).rstrip("/")

    def traffic_refusal(self, strategy: str, *, gateway: str = "") -> str | None:
        if strategy == "shadow" and not gateway:
            return (
                "A shadow rollout mirrors live requests to the new revision, which needs Gateway API on the "
                "cluster, and this environment has no gateway. Install Gateway API and set the environment's "
                "gateway (namespace/name of the Gateway), or choose canary or blue_green."
            )
        if strategy in ("all_at_once", "canary", "blue_green", "shadow"):
            return None
        return super().traffic_refusal(strategy)

    def set_traffic(self, split: TrafficSplit, log: Log) -> None:
        """With Gateway API (``split_gateway``: the candidate's ``gateway``, else the stable revision's): server-side
        apply of the deployment's HTTPRoute. Without: the candidate's replicas and the primary Service's selector
        (``_share_by_replicas``)."""
        base = split.stable or split.candidate
        if base is None:
            return
        with self._access(base):
            if split_gateway(split):
                self._apply_route(split, self._route_spec(replace(base, gateway=split_gateway(split))), log)
            else:
                self._share_by_replicas(split, log)

    def _route_spec(self, spec: ServingSpec) -> ServingSpec:
        """The spec whose object name is the route's (the deployment's own)."""
        return replace(spec, placement=PRIMARY)

    def _apply_route(self, split: TrafficSplit, base: ServingSpec, log: Log) -> None:
        names = {"deployment": base.deployment, "namespace": base.namespace}
        hostnames = (self.route_hostname_template.format(**names),) if self.route_hostname_template else ()
        route = render_route(split, path_prefix=self.route_path_template.format(**names), hostnames=hostnames)
        live = self._read("HTTPRoute", base)
        if live is not None and (refusal := ownership_refusal(live, base, "overwrite")):
            raise PermanentBackendError(refusal)
        try:
            applied = self._apply_one(base, route, log)
        except PermanentBackendError as exc:
            if status_of(exc) == 404:
                raise PermanentBackendError(
                    f"Environment {base.environment} routes through the Gateway {base.gateway}, but the cluster has "
                    f"no Gateway API ({GATEWAY_GROUP}/{ROUTE_VERSION} {ROUTE_PLURAL}): install its CRDs (v1.3 or "
                    "later for a mirror percent), or clear the environment's gateway."
                ) from exc
            if status_of(exc) == 400 and "requestMirror.percent" in exc.message:
                raise PermanentBackendError(
                    f"The Gateway API of environment {base.environment}'s cluster is older than v1.3 and cannot "
                    f"mirror {split.mirror_percent}% of requests (only all of them): use mirror_percent 100, or "
                    "upgrade its Gateway API CRDs (AKS installs v1.3.0 from Kubernetes 1.34)."
                ) from exc
            raise
        shares = ", ".join(f"{ref['name']} {ref['weight']}%" for ref in route["spec"]["rules"][0]["backendRefs"])
        mirror = next(
            (f["requestMirror"] for f in route["spec"]["rules"][0].get("filters", []) if f["type"] == "RequestMirror"),
            None,
        )
        mirrored = f", mirroring {mirror.get('percent', 100)}% to {mirror['backendRef']['name']}" if mirror else ""
        log(f"HTTPRoute {base.namespace}/{base.deployment}: {shares}{mirrored}")
        self._await_route_acceptance(base, applied, log)

    def _await_route_acceptance(self, base: ServingSpec, route: Manifest | None, log: Log) -> None:
        """The weights are in effect only once the Gateway's controller accepts ``route`` (the apply's answer, then
        re-read; its ``status.parents``): a refusal fails the step with the controller's reason; no word within
        ``route_accept_timeout_seconds`` is logged and tolerated (the analysis then waits for the candidate's
        traffic)."""
        name = f"{base.namespace}/{base.deployment}"
        deadline = time.monotonic() + self.route_accept_timeout
        while (conditions := route_conditions(route, base.gateway)) is None:
            if time.monotonic() >= deadline:
                log(
                    f"HTTPRoute {name}: no controller of the Gateway {base.gateway} reported on it within "
                    f"{self.route_accept_timeout:g} s; the weights take effect when one accepts it"
                )
                return
            time.sleep(self.poll_interval)
            route = self._read("HTTPRoute", base)
        status, reason, message = conditions["Accepted"]
        if status != "True":
            hint = (
                f" (let the Gateway's listeners allow routes from namespace {base.namespace}: allowedRoutes)"
                if reason == "NotAllowedByListeners"
                else ""
            )
            raise PermanentBackendError(
                f"The Gateway {base.gateway} did not accept HTTPRoute {name}: {reason}: {message}{hint}"
            )
        resolved = conditions.get("ResolvedRefs")
        if resolved is not None and resolved[0] != "True":
            _, reason, message = resolved
            raise PermanentBackendError(
                f"The Gateway {base.gateway} cannot route HTTPRoute {name} to its backends: {reason}: {message}"
            )
        log(f"HTTPRoute {name}: accepted by the Gateway {base.gateway}")

    def _share_by_replicas(self, split: TrafficSplit, log: Log) -> None:
        """Without Gateway API a canary shares the primary Service: its selector widens to the candidate's pods,
        and the candidate gets ``weight`` percent of the pods (approximate; ``candidate_replicas``). With no
        weight (blue-green, or back to the stable revision) the Service selects the primary's pods only."""
        stable, candidate = split.stable, split.candidate
        if stable is None:
            return
        shared = candidate is not None and split.weight > 0
        count, replicas = 0, 0
        if candidate is not None:
            primary = self._read_deployment(stable)
            count = int(((primary or {}).get("spec") or {}).get("replicas") or stable.replicas)
            replicas = candidate_replicas(count, split.weight, most=candidate.max_replicas) if shared else 0
            for kind in ("Deployment", "Service"):
                live = self._read(kind, candidate)
                if live is not None and (refusal := ownership_refusal(live, candidate, "overwrite")):
                    raise PermanentBackendError(refusal)
            deployment = render_deployment(
                candidate, replicas=replicas or None, image_pull_secrets=self.image_pull_secrets
            )
            self._apply_one(candidate, deployment, log)
        service = self._read("Service", stable)
        if service is None:
            raise PermanentBackendError(f"Service {stable.namespace}/{stable.deployment} does not exist")
        if refusal := ownership_refusal(service, stable, "overwrite"):
            raise PermanentBackendError(refusal)
        wanted = render_service(stable, shared=shared)
        if (service.get("spec") or {}).get("selector") != wanted["spec"]["selector"]:
            self._apply_one(stable, wanted, log)
        if shared and candidate is not None:
            log(
                f"Service {stable.namespace}/{stable.deployment} shared by {count} primary and {replicas} candidate "
                f"replicas: about {replica_shares(count, replicas)[1]}% to {candidate.revision}"
            )
        else:
            log(f"Service {stable.namespace}/{stable.deployment} selects {stable.revision} (primary) only")

    def traffic(self, spec: ServingSpec) -> dict[str, int]:
        """Revision -> percent, as applied: from the HTTPRoute's weights, or from the replica counts behind the
        shared Service (labelled by the ``modelplane.io/revision`` annotation of each side's objects)."""
        with self._access(spec):
            return self._route_traffic(spec) if spec.gateway else self._replica_traffic(spec)

    def _revision_of(self, kind: str, spec: ServingSpec, name: str) -> str:
        live = self._read(kind, replace(spec, placement=CANDIDATE if name != spec.deployment else PRIMARY))
        return ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_REVISION) or name

    def _route_traffic(self, spec: ServingSpec) -> dict[str, int]:
        route = self._read("HTTPRoute", self._route_spec(spec))
        if route is None:
            return {}
        shares, mirror = route_shares(route)
        weights: dict[str, int] = {}
        for name, percent in shares.items():
            revision = self._revision_of("Service", spec, name)
            weights[revision] = weights.get(revision, 0) + percent
        return {**weights, "mirror": mirror} if mirror else weights

    def _replica_traffic(self, spec: ServingSpec) -> dict[str, int]:
        primary_spec, candidate_spec = replace(spec, placement=PRIMARY), replace(spec, placement=CANDIDATE)
        service, primary = self._read("Service", primary_spec), self._read_deployment(primary_spec)
        if service is None or primary is None:
            return {}
        stable = ((primary.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_REVISION) or spec.deployment
        candidate = self._read_deployment(candidate_spec)
        if candidate is None:
            return {stable: 100}
        revision = ((candidate.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_REVISION) or "candidate"
        if (service.get("spec") or {}).get("selector") != shared_selector(primary_spec):
            return {stable: 100, revision: 0}
        kept, moved = replica_shares(
            int((primary.get("spec") or {}).get("replicas") or 0),
            int((candidate.get("spec") or {}).get("replicas") or 0),
        )
        return {stable: kept, revision: moved} if stable != revision else {stable: 100}

    def promote(self, candidate: ServingSpec, log: Log, *, timeout_seconds: float) -> Readiness:
        """Flagger's primary/canary: the candidate's spec is applied to the primary Deployment (a rolling update,
        the primary's pods serving throughout), and once it is ready all traffic goes to ``<name>`` and the
        candidate's objects are deleted."""
        primary = replace(candidate, placement=PRIMARY)
        self.apply(primary, log)
        readiness = self.wait_ready(primary, log, timeout_seconds=timeout_seconds)
        if readiness.ok:
            self.set_traffic(TrafficSplit(stable=primary), log)
            self.retire(replace(candidate, placement=CANDIDATE), log)
        return readiness

    def _delete_route(self, spec: ServingSpec, log: Log) -> None:
        live = self._read("HTTPRoute", spec)
        if live is None:
            log(f"HTTPRoute {spec.namespace}/{spec.deployment} already gone")
            return
        if refusal := ownership_refusal(live, spec, "delete"):
            log(f"left alone: {refusal}")
            return
        api, _ = self._api("HTTPRoute")
        try:
            self.cluster.call("delete the HTTPRoute", api.delete_namespaced_route, spec.deployment, spec.namespace)
        except PermanentBackendError as exc:
            if status_of(exc) != 404:
                raise
        log(f"deleted HTTPRoute {spec.namespace}/{spec.deployment}")
