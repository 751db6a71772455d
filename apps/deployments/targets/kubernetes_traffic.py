"""How the Kubernetes target splits a deployment's traffic between its primary and its candidate revision: pure
functions rendering the Gateway API HTTPRoute, reading its weights back, and the replica ratios of the fallback
for clusters without Gateway API.

One Service per revision, the route owned by the deployment: the primary serves from ``<name>`` (Deployment and
Service), a candidate from ``<name>-canary`` (``naming.candidate_name``) beside it. With Gateway API the HTTPRoute
``<name>`` sends ``100 - w`` percent to ``<name>`` and ``w`` to ``<name>-canary``, and mirrors to the candidate for
shadow rollouts. Without it, the primary Service widens its selector to the candidate's pods too, and the replica
counts set the share (approximate: kube-proxy spreads connections over ready endpoints, not requests by weight).
"""

from __future__ import annotations

from typing import Any

from apps.deployments.naming import candidate_name
from apps.deployments.targets.base import CANDIDATE, ServingSpec, TrafficSplit

__all__ = [
    "GATEWAY_GROUP",
    "ROUTE_VERSION",
    "ROUTE_PLURAL",
    "object_name",
    "gateway_parent",
    "split_gateway",
    "route_manifest",
    "route_shares",
    "route_conditions",
    "candidate_replicas",
    "replica_shares",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
ROUTE_VERSION = "v1"
ROUTE_PLURAL = "httproutes"
# Gateway API before v1.3 has no requestMirror.percent (every request is mirrored); leaving it out at 100 keeps
# blue-green and shadow at 100 % working on v1.2 gateways too.
ALL = 100

Manifest = dict[str, Any]


def object_name(spec: ServingSpec) -> str:
    """The name of the Deployment and Service ``spec`` serves from: the deployment's own for the primary,
    ``<name>-canary`` for a candidate."""
    return candidate_name(spec.deployment) if spec.placement == CANDIDATE else spec.deployment


def gateway_parent(gateway: str) -> dict[str, str]:
    """The parentRef of ``namespace/name`` (or ``name``: a Gateway in the route's own namespace)."""
    namespace, _, name = gateway.strip().rpartition("/")
    parent = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": name}
    if namespace:
        parent["namespace"] = namespace
    return parent


def split_gateway(split: TrafficSplit) -> str:
    """The gateway a split goes through: the candidate's (the newest word on the environment's setting), else the
    stable revision's."""
    newest = split.candidate or split.stable
    return newest.gateway if newest is not None else ""


def _backend(name: str, port: int, weight: int) -> dict[str, Any]:
    return {"kind": "Service", "name": name, "port": port, "weight": weight}


def route_manifest(
    split: TrafficSplit,
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
    port: int,
    path_prefix: str = "/",
    hostnames: tuple[str, ...] = (),
) -> Manifest:
    """The HTTPRoute ``<name>`` sharing the traffic as ``split`` says, attached to the spec's gateway.

    Requests under ``path_prefix`` (rewritten to ``/`` for the scoring server) and for ``hostnames`` (any, if none)
    go ``100 - weight`` percent to the stable revision's Service and ``weight`` to the candidate's; with
    ``mirror_percent`` that share of them is also sent to the candidate, whose answers the gateway discards."""
    stable, candidate = split.stable, split.candidate
    base = stable or candidate
    if base is None:
        raise ValueError("a traffic split needs a stable or a candidate revision")
    weight = max(0, min(100, split.weight))
    backends = []
    if stable is not None:
        backends.append(_backend(object_name(stable), port, ALL - weight if candidate is not None else ALL))
    if candidate is not None:
        backends.append(_backend(object_name(candidate), port, weight if stable is not None else ALL))
    filters: list[dict[str, Any]] = []
    if path_prefix != "/":
        rewrite = {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    mirror = max(0, min(100, split.mirror_percent))
    if stable is not None and candidate is not None and mirror:
        request_mirror: dict[str, Any] = {
            "backendRef": {"kind": "Service", "name": object_name(candidate), "port": port}
        }
        if mirror < ALL:
            request_mirror["percent"] = mirror
        filters.append({"type": "RequestMirror", "requestMirror": request_mirror})
    rule: dict[str, Any] = {"matches": [{"path": {"type": "PathPrefix", "value": path_prefix}}]}
    if filters:
        rule["filters"] = filters
    rule["backendRefs"] = backends
    spec: dict[str, Any] = {"parentRefs": [gateway_parent(split_gateway(split))], "rules": [rule]}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{ROUTE_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {
            "name": base.deployment,
            "namespace": base.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def route_conditions(route: Manifest | None, gateway: str) -> dict[str, tuple[str, str, str]] | None:
    """What the Gateway's controller says of the route's current spec: condition type -> (status, reason, message)
    from the ``status.parents`` entry of ``gateway``, or None while no controller has reported on this generation
    (or there is no route)."""
    if route is None:
        return None
    namespace = route["metadata"].get("namespace", "")
    generation = route["metadata"].get("generation", 1)
    wanted = gateway_parent(gateway)
    wanted_key = (wanted.get("namespace", namespace), wanted["name"])
    for parent in (route.get("status") or {}).get("parents") or []:
        ref = parent.get("parentRef") or {}
        if (ref.get("namespace", namespace), ref.get("name")) != wanted_key:
            continue
        conditions = {
            c["type"]: (c.get("status", ""), c.get("reason", ""), c.get("message", ""))
            for c in parent.get("conditions") or []
            if c.get("observedGeneration", generation) >= generation
        }
        if "Accepted" in conditions:
            return conditions
    return None


def route_shares(route: Manifest) -> tuple[dict[str, int], int]:
    """(Service name -> percent of client traffic, percent mirrored) as the live HTTPRoute says. Weights are
    relative (Gateway API): they are turned into percents of their sum; a mirror filter without ``percent`` or
    ``fraction`` mirrors everything."""
    shares: dict[str, int] = {}
    mirror = 0
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        total = sum(int(ref.get("weight", 1)) for ref in refs)
        for ref in refs:
            weight = int(ref.get("weight", 1))
            shares[ref["name"]] = shares.get(ref["name"], 0) + (round(ALL * weight / total) if total else 0)
        for item in rule.get("filters") or []:
            found = item.get("requestMirror")
            if item.get("type") != "RequestMirror" or not found:
                continue
            if "percent" in found:
                mirror = int(found["percent"])
            elif "fraction" in found:
                fraction = found["fraction"]
                mirror = round(ALL * int(fraction["numerator"]) / int(fraction.get("denominator", 100)))
            else:
                mirror = ALL
    return shares, mirror


def candidate_replicas(primary: int, weight: int, *, most: int) -> int:
    """The fallback's candidate replicas for ``weight`` percent of the pods behind the shared Service, beside
    ``primary`` replicas: ``primary * w / (100 - w)`` rounded, at least one while ``weight`` > 0, at most
    ``most`` (the spec's ``max_replicas``), so 20 % of 4 primaries is 1 candidate, 50 % is 4."""
    if weight <= 0:
        return 0
    wanted = round(max(primary, 1) * weight / max(ALL - weight, 1))
    return max(1, min(wanted, max(most, 1)))


def replica_shares(primary: int, candidate: int) -> tuple[int, int]:
    """The percent of the shared Service's pods each side has (what kube-proxy spreads connections over)."""
    total = primary + candidate
    if total <= 0:
        return ALL, 0
    share = round(ALL * candidate / total)
    return ALL - share, share
