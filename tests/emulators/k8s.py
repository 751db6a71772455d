"""A Kubernetes API for tests: kmock's ``KubernetesEmulator`` plus what the kubernetes target relies on.

kmock 0.8 stores objects and serves discovery, but as an API server it lacks (shared/KNOWN.md): PUT,
server-side apply that creates missing objects, strategic merge of lists, label and field selectors,
uid/resourceVersion/generation, status subresources and pod logs. ``ModelplaneEmulator`` answers object
requests itself, keeping the state in kmock's ``objects`` array (so histories stay inspectable), and leaves
discovery and watches to kmock.

The emulator runs on its own event loop in a daemon thread (the sync client would block the loop it runs
on). ``Controller`` lets a test play the kube-controller-manager and the kubelet: set a Deployment's status,
create pods from its template with given container states, add events and container logs.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml
from kmock import KubernetesError, KubernetesObjectNotFoundError

from tests.emulators.k8s_auth import ANONYMOUS, Authenticator, Rbac, UserInfo, forbidden
from tests.emulators.k8s_gateway import (
    GATEWAY_GROUP,
    VERSIONS,
    GatewayController,
    admit_route,
    no_gateway_api,
    strict_fields,
)
from tests.emulators.k8s_pod_security import admit_pod
from tests.emulators.k8s_rules import FieldOwners, validate

__all__ = ["ModelplaneEmulator", "EmulatorThread", "Controller", "resource_of"]

KINDS = {
    "namespaces": "Namespace",
    "deployments": "Deployment",
    "replicasets": "ReplicaSet",
    "services": "Service",
    "pods": "Pod",
    "events": "Event",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "jobs": "Job",
    "httproutes": "HTTPRoute",
}
RESOURCES = {
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Service": ("", "v1", "services"),
    "Pod": ("", "v1", "pods"),
    "Event": ("", "v1", "events"),
    "HorizontalPodAutoscaler": ("autoscaling", "v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "HTTPRoute": (GATEWAY_GROUP, "v1", "httproutes"),
}
WITH_STATUS = {"deployments", "replicasets", "pods", "services", "horizontalpodautoscalers", "poddisruptionbudgets"}
WITH_STATUS |= {"httproutes"}
# Strategic merge: lists of objects merged by key, as the built-in types declare (x-kubernetes-patch-merge-key).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "containerStatuses": "name",
}
SERVER_METADATA = ("uid", "creationTimestamp", "resourceVersion", "generation", "deletionTimestamp")
NAMESPACES = kmock.resource("", "v1", "namespaces")
# kmock 0.8's path parser fails on /api/v1/namespaces and reads /api/v1/namespaces/NAME as a namespace without a
# resource, so the emulator answers these cluster-scoped paths itself (see ModelplaneEmulator.__call__).
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")


_USER: contextvars.ContextVar[UserInfo] = contextvars.ContextVar("k8s_user", default=ANONYMOUS)
RBAC_KINDS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def resource_of(kind: str) -> kmock.resource:
    return kmock.resource(*RESOURCES[kind])


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------- merging
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch for the fields the built-in types mark: lists of objects merge by their key."""
    if isinstance(patch, list):
        key = MERGE_KEYS.get(field) or (
            "containerPort" if field == "ports" and _all_have(patch, "containerPort") else ""
        )
        key = key or ("port" if field == "ports" and _all_have(patch, "port") else "")
        if not key or not isinstance(target, list) or not _all_have(patch, key):
            return copy.deepcopy(patch)
        merged = [copy.deepcopy(item) for item in target]
        index = {item.get(key): i for i, item in enumerate(merged) if isinstance(item, dict)}
        for item in patch:
            if item.get(key) in index:
                merged[index[item[key]]] = strategic_merge(merged[index[item[key]]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key)
    return result


def _all_have(items: list[Any], key: str) -> bool:
    return bool(items) and all(isinstance(item, dict) and key in item for item in items)


# ---------------------------------------------------------------------------------------------- selectors
_SET_SELECTOR = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for requirement in _split_selector(selector):
        if match := _SET_SELECTOR.match(requirement):
            key, operator, values = match.groups()
            wanted = {v.strip() for v in values.split(",")}
            if (labels.get(key) in wanted) != (operator == "in") or (operator == "in" and key not in labels):
                return False
        elif "!=" in requirement:
            key, value = (s.strip() for s in requirement.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = (s.strip() for s in requirement.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif requirement.startswith("!"):
            if requirement[1:].strip() in labels:
                return False
        elif requirement not in labels:
            return False
    return True


def field_selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    for requirement in _split_selector(selector):
        negate = "!=" in requirement
        path, value = (s.strip() for s in requirement.replace("!=", "=").replace("==", "=").split("=", 1))
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if (str(current if current is not None else "") == value) == negate:
            return False
    return True


# ---------------------------------------------------------------------------------------------- the emulator
@attrs.define(kw_only=True)
class ModelplaneEmulator(kmock.KubernetesEmulator):
    """Object requests are answered here; everything else (discovery, /version, watches) by kmock."""

    _resource_version: int = attrs.field(default=0, init=False)
    # (namespace, pod, container, previous) -> log text
    logs: dict[tuple[str, str, str, bool], str] = attrs.field(factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)
    owners: FieldOwners = attrs.field(factory=FieldOwners, init=False)
    # Who may call (k8s_auth.py): by default anyone, anonymous or with a known token, may do anything, like a
    # development API server; ``EmulatorThread(strict=True)`` wants a token and applies the stored RBAC objects.
    auth: Authenticator = attrs.field(factory=Authenticator, init=False)
    rbac: Rbac = attrs.field(factory=Rbac, init=False)
    # The Gateway API release whose CRDs are installed (k8s_gateway.VERSIONS); "": none, their group answers 404.
    gateway_api: str = attrs.field(default=VERSIONS[0], init=False)
    # The Gateway implementation's controller writing HTTPRoute status (k8s_gateway.py); None: no controller runs.
    gateway_controller: GatewayController | None = attrs.field(factory=GatewayController, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            _USER.set(self.auth.authenticate(raw_request.headers.get("Authorization", "")))
        except KubernetesError as error:
            return await self._render_error(error)
        match = _NAMESPACE_PATH.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        request = kmock.Request(
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=None,
            body=body,
            text=body.decode(),
            resource=NAMESPACES,
            namespace=None,
            name=match.group(1),
            subresource=None,
        )
        try:
            return await self._handle(request)
        except KubernetesError as error:
            return await self._render_error(error)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """The API server's own bodies for 401 and 403 (no traceback in ``details``, none at all for a 401)."""
        if isinstance(exc, KubernetesError) and exc.status in (401, 403):
            body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
            body |= {"message": exc.message, "reason": exc.reason}
            if exc.details:
                body["details"] = exc.details
            return aiohttp.web.json_response({**body, "code": exc.status}, status=exc.status)
        return await super()._render_error(exc)

    def _verb(self, request: kmock.Request) -> str:
        method = str(request.method.value).upper()
        if method == "GET" and request.name is None:
            return "watch" if request.params.get("watch") in ("true", "1") else "list"
        if method == "DELETE" and request.name is None:
            return "deletecollection"
        return VERBS.get(method, "get")

    def authorize(self, request: kmock.Request, verb: str | None = None) -> None:
        """RBAC (k8s_auth.Rbac) for a resource request; raises the API server's 403. Discovery is open to all."""
        res = request.resource
        if res is None or not res.plural:
            return
        verb = verb or self._verb(request)
        resource = f"{res.plural}/{request.subresource}" if request.subresource else res.plural
        user, group, namespace, name = _USER.get(), res.group or "", request.namespace, request.name
        if not self.rbac.allowed(self._rbac_objects, user, verb, group, resource, namespace, name):
            raise forbidden(user, verb, group, res.plural, request.subresource or "", namespace, name)

    def _rbac_objects(self, plural: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj.raw)
            for (r, _, _), obj in self._objects.items()
            if r.group == "rbac.authorization.k8s.io" and r.plural == plural and not obj.deleted
        ]

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self.authorize(request)
        res = request.resource
        if res is not None and res.group == GATEWAY_GROUP and not self.gateway_api:
            raise no_gateway_api()
        if res is None or not res.plural or request.action == kmock.action.WATCH:
            return await super()._handle(request)
        if request.params.get("watch") in ("true", "1"):
            return await super()._handle(request)
        method = str(request.method.value).upper()
        async with self._lock:
            status, body = self._serve(method, request)
        if isinstance(body, str):
            return aiohttp.web.Response(text=body, status=status, content_type="text/plain")
        return aiohttp.web.json_response(body, status=status)

    def _serve(self, method: str, request: kmock.Request) -> tuple[int, Any]:
        res, ns, name, sub = request.resource, request.namespace, request.name, request.subresource
        if method == "GET" and name is None:
            return 200, self._list(res, ns, request.params)
        if method == "GET" and sub == "log":
            return 200, self._log(ns, name, request.params)
        if method == "GET":
            return 200, self._with_managed_fields(res, ns, self._require(res, ns, name))
        if method in ("POST", "PUT", "PATCH") and ns is not None and self.get(NAMESPACES, None, ns) is None:
            raise KubernetesObjectNotFoundError(reason="NotFound", message=f'namespaces "{ns}" not found')
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if res.group == GATEWAY_GROUP and method in ("POST", "PUT", "PATCH") and "json-patch" not in content_type:
            strict_fields(_body(request), request.params.get("fieldValidation"), self.gateway_api)
        if method == "POST" and name is None:
            return 201, self._create(res, ns, _body(request), _manager(request))
        if method == "PUT" and name is not None:
            return 200, self._replace(res, ns, name, _body(request), sub, _manager(request))
        if method == "PATCH" and name is not None:
            return self._patch(res, ns, name, request, sub)
        if method == "DELETE" and name is not None:
            return 200, self._delete(res, ns, name)
        raise KubernetesError(status=405, reason="MethodNotAllowed", message=f"{method} {request.url.path}")

    # ------------------------------------------------------------------ storage
    def get(self, res: kmock.resource, ns: str | None, name: str) -> dict[str, Any] | None:
        key = (res, ns, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(self._objects[key].raw)

    def _require(self, res: kmock.resource, ns: str | None, name: str) -> dict[str, Any]:
        obj = self.get(res, ns, name)
        if obj is None:
            raise KubernetesObjectNotFoundError(reason="NotFound", message=f'{res.plural} "{name}" not found')
        return obj

    def store(self, res: kmock.resource, ns: str | None, new: dict[str, Any]) -> dict[str, Any]:
        """Write ``new`` as the object's next version, with the bookkeeping a real API server does.

        A write that changes nothing keeps the resourceVersion; generation grows only when the spec does.
        Must be called on the emulator's loop with ``_lock`` held (or from ``Controller``)."""
        name = new["metadata"]["name"]
        old = self.get(res, ns, name)
        meta = new["metadata"]
        if ns is not None:
            meta["namespace"] = ns
        if old is None:
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        else:
            for field in SERVER_METADATA:
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
                else:
                    meta.pop(field, None)
            if _without(new, "metadata", "status") != _without(old, "metadata", "status"):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if new == old:
                return old
        if res.group == GATEWAY_GROUP and res.plural == "httproutes" and self.gateway_controller is not None:
            services = {o["metadata"]["name"] for o in self._list(resource_of("Service"), ns, {})["items"]}
            status = self.gateway_controller.status(new, services)
            if status is not None:
                new["status"] = status
        self._resource_version += 1
        meta["resourceVersion"] = str(self._resource_version)
        key = (res, ns, name)
        if key in self._objects:
            self._objects[key].create(new)
        else:
            self._objects[key] = new
        self._publish(res, "ADDED" if old is None else "MODIFIED", new)
        return copy.deepcopy(new)

    def _publish(self, res: kmock.resource, kind: str, obj: dict[str, Any]) -> None:
        """Feed kmock's watch streams (always called on the emulator's loop)."""
        task = asyncio.get_running_loop().create_task(
            self._buses[res].put({"type": kind, "object": copy.deepcopy(obj)})
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _with_managed_fields(self, res: kmock.resource, ns: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """``metadata.managedFields`` as the API server reports them (FieldsV1, from ``owners``)."""
        entries = []
        for manager, paths in sorted(self.owners.by_object.get((res, ns, obj["metadata"]["name"]), {}).items()):
            fields: dict[str, Any] = {}
            for path in sorted(paths):
                node = fields
                for key in path:
                    node = node.setdefault(f"f:{key}", {})
            if fields:
                entries.append(
                    {"manager": manager, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": fields}
                )
        obj["metadata"]["managedFields"] = entries
        return obj

    # ------------------------------------------------------------------ verbs
    def _list(self, res: kmock.resource, ns: str | None, params: dict[str, str]) -> dict[str, Any]:
        items = []
        for (r, namespace, _), obj in self._objects.items():
            if r != res or obj.deleted or (ns is not None and namespace != ns):
                continue
            raw = copy.deepcopy(obj.raw)
            labels = (raw.get("metadata") or {}).get("labels") or {}
            if params.get("labelSelector") and not label_selector_matches(params["labelSelector"], labels):
                continue
            if params.get("fieldSelector") and not field_selector_matches(params["fieldSelector"], raw):
                continue
            items.append(raw)
        kind = KINDS.get(res.plural, res.plural.capitalize())
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        meta = {"resourceVersion": str(self._resource_version)}
        return {"apiVersion": api_version, "kind": f"{kind}List", "metadata": meta, "items": items}

    def _log(self, ns: str | None, pod: str, params: dict[str, str]) -> str:
        obj = self._require(resource_of("Pod"), ns, pod)
        container = params.get("container") or obj["spec"]["containers"][0]["name"]
        previous = params.get("previous") in ("true", "True", "1")
        key = (ns or "", pod, container, previous)
        if key not in self.logs:
            which = "previous terminated container" if previous else "container"
            raise KubernetesError(status=400, reason="BadRequest", message=f'{which} "{container}" not found')
        lines = self.logs[key].splitlines()
        if params.get("tailLines"):
            lines = lines[-int(params["tailLines"]) :]
        return "\n".join(lines) + ("\n" if lines else "")

    def _create(self, res: kmock.resource, ns: str | None, body: dict[str, Any], manager: str) -> dict[str, Any]:
        if self.get(res, ns, body["metadata"]["name"]) is not None:
            raise KubernetesError(status=409, reason="AlreadyExists", message="object already exists")
        if res.plural == "pods":  # Pod Security admission (k8s_pod_security.py)
            admit_pod(self.get(NAMESPACES, None, ns), body)
        return self.write(res, ns, body, None, manager)

    def _replace(
        self, res: kmock.resource, ns: str | None, name: str, body: dict[str, Any], sub: str | None, manager: str
    ):
        old = self._require(res, ns, name)
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version and version != old["metadata"]["resourceVersion"]:
            raise KubernetesError(status=409, reason="Conflict", message="the object has been modified")
        return self.write(res, ns, self._with_status_rules(res, old, body, sub), old, manager)

    def write(self, res: kmock.resource, ns: str | None, new: dict[str, Any], old: dict[str, Any] | None, manager: str):
        """A non-apply write, as the API server admits it: validated, and ``manager`` owns the fields it changed."""
        new = self._admitted(res, new)
        validate(new.get("kind") or KINDS.get(res.plural, res.plural), new, old)
        self.owners.update((res, ns, new["metadata"]["name"]), old, new, manager)
        return self.store(res, ns, new)

    def _patch(self, res: kmock.resource, ns: str | None, name: str, request: kmock.Request, sub: str | None):
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        body = _body(request)
        old = self.get(res, ns, name)
        if content_type == "application/apply-patch+yaml":
            if old is None:
                self.authorize(request, "create")  # an apply that creates is a create too
            if not request.params.get("fieldManager"):
                raise KubernetesError(status=400, reason="BadRequest", message="fieldManager is required for apply")
            # Field ownership (k8s_rules.FieldOwners): a field another manager owns conflicts unless forced;
            # what this manager stops applying is removed; server fields and status are kept.
            body.setdefault("metadata", {})["name"] = name
            force = request.params.get("force") in ("true", "True", "1")
            key = (res, ns, name)
            owners_before = copy.deepcopy(self.owners.by_object.get(key))
            new = self.owners.apply(key, old, body, manager=request.params["fieldManager"], force=force)
            try:  # the merged object is what must be valid
                new = self._admitted(res, new)
                validate(body.get("kind") or KINDS.get(res.plural, res.plural), new, old)
            except KubernetesError:
                self.owners.by_object[key] = owners_before or {}
                raise
            new.pop("status", None)
            if old is not None and old.get("status") is not None:
                new["status"] = old["status"]
            return (201 if old is None else 200), self.store(res, ns, new)
        if old is None:
            raise KubernetesObjectNotFoundError(reason="NotFound", message=f'{res.plural} "{name}" not found')
        if content_type == "application/json-patch+json":
            patched = jsonpatch.apply_patch(old, body)
        elif content_type == "application/merge-patch+json":
            patched = merge_patch(old, body)
        else:  # strategic merge, kubectl's and the client's default for dict bodies
            patched = strategic_merge(old, body)
        return 200, self.write(res, ns, self._with_status_rules(res, old, patched, sub), old, _manager(request))

    @staticmethod
    def _with_status_rules(res: kmock.resource, old: dict[str, Any], new: dict[str, Any], sub: str | None):
        """With a status subresource, the main resource ignores status writes and /status ignores the rest."""
        if res.plural not in WITH_STATUS:
            return new
        if sub == "status":
            result = copy.deepcopy(old)
            result["status"] = new.get("status")
            return result
        result = copy.deepcopy(new)
        result.pop("status", None)
        if "status" in old:
            result["status"] = old["status"]
        return result

    def _admitted(self, res: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
        """A custom resource as its CRD admits it (pruned, defaulted, validated); built-in kinds as they are."""
        if res.group == GATEWAY_GROUP and res.plural == "httproutes":
            return admit_route(obj, self.gateway_api)
        return obj

    def _delete(self, res: kmock.resource, ns: str | None, name: str) -> dict[str, Any]:
        obj = self._require(res, ns, name)
        self._objects[res, ns, name].delete()
        self.owners.forget((res, ns, name))
        self._publish(res, "DELETED", obj)
        return obj


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _manager(request: kmock.Request) -> str:
    """The field manager of a non-apply write: the fieldManager parameter, else (as the API server does) the
    client's User-Agent up to its first '/'."""
    agent = (request.headers.get("User-Agent") or "unknown").split("/")[0]
    return request.params.get("fieldManager") or agent


def _body(request: kmock.Request) -> Any:
    if isinstance(request.data, (dict, list)):
        return copy.deepcopy(request.data)
    text = request.body.decode() if request.body else ""
    try:
        return json.loads(text)
    except ValueError:
        return yaml.safe_load(text)


# ---------------------------------------------------------------------------------------------- running it
class _TlsServer(aiohttp.test_utils.RawTestServer):
    ssl_context: ssl.SSLContext | None = None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        await super().start_server(loop=loop, ssl=self.ssl_context, **kwargs)


class EmulatorThread:
    """The emulator on 127.0.0.1 on a free port, served from a daemon thread with its own event loop.

    ``strict``: as an AKS API server, not a development one: requests need a token (k8s_auth.Authenticator) and
    are authorized by the RBAC objects stored in it. ``gateway_api``: the Gateway API release whose CRDs are installed
    ("" none; HTTPRoutes, k8s_gateway.py). ``tls_dir``: served over HTTPS with a certificate made there
    for IP:127.0.0.1 (``ca`` is its path), so a client must be given the CA or told not to verify."""

    def __init__(self, *, strict: bool = False, tls_dir: Path | None = None, gateway_api: str = VERSIONS[0]) -> None:
        self.emulator = ModelplaneEmulator()
        self.emulator.gateway_api = gateway_api
        if strict:
            self.emulator.auth.anonymous = False
            self.emulator.rbac.mode = "RBAC"
        self.ca = ""
        self._ssl: ssl.SSLContext | None = None
        if tls_dir is not None:
            from tests.emulators.acr import make_certificate

            cert, key = make_certificate(tls_dir)
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(cert, key)
            self.ca = str(cert)
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)

    def start(self) -> EmulatorThread:
        self._thread.start()
        if not self._started.wait(10) or self._error:
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server_cls = type("TlsServer", (_TlsServer,), {"ssl_context": self._ssl})
        async with self.emulator, kmock.Server(self.emulator, server_cls=server_cls) as server:
            self.url = str(server.url).rstrip("/")
            self._started.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop holding its lock, as the request handlers do."""

        async def locked() -> Any:
            async with self.emulator._lock:
                return fn()

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(locked(), self.loop).result(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class Controller:
    """The test's hands on the cluster: what the controllers and kubelets would write."""

    def __init__(self, runner: EmulatorThread) -> None:
        self.runner = runner
        self.emulator = runner.emulator

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.runner.call(lambda: self.emulator.get(resource_of(kind), namespace, name))

    def list(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        res = resource_of(kind)
        return self.runner.call(lambda: self.emulator._list(res, namespace, {})["items"])

    def _update(self, kind: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict:
        res = resource_of(kind)

        def update() -> dict[str, Any]:
            obj = self.emulator.get(res, namespace, name)
            if obj is None:
                raise LookupError(f"{kind} {namespace}/{name} does not exist")
            change(obj)
            return self.emulator.store(res, namespace, obj)

        return self.runner.call(update)

    def scale(self, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """What the HorizontalPodAutoscaler does through the scale subresource (owning spec.replicas then)."""
        res = resource_of("Deployment")

        def update() -> dict[str, Any]:
            old = self.emulator.get(res, namespace, name)
            if old is None:
                raise LookupError(f"Deployment {namespace}/{name} does not exist")
            new = copy.deepcopy(old)
            new["spec"]["replicas"] = replicas
            return self.emulator.write(res, namespace, new, old, "kube-controller-manager")

        return self.runner.call(update)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Any object, as an administrator creates it (RBAC objects, for one)."""
        api_version = manifest["apiVersion"]
        group, _, version = api_version.rpartition("/")
        plural = manifest["kind"].lower() + "s"
        res = kmock.resource(group, version, plural)
        namespace = manifest["metadata"].get("namespace")
        return self.runner.call(lambda: self.emulator.write(res, namespace, copy.deepcopy(manifest), None, "kubectl"))

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A namespace, as an administrator creates it (objects in a missing namespace are refused); ``labels``
        such as ``pod-security.kubernetes.io/enforce`` (k8s_pod_security.py)."""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        return self.runner.call(lambda: self.emulator.write(NAMESPACES, None, namespace, None, "kubectl"))

    def requests(self) -> list[tuple[str, str, str, dict[str, str]]]:
        """Every request served so far: (method, path, content type, query parameters)."""
        return [
            (str(r.method.value).upper(), r.url.path, r.headers.get("Content-Type", ""), dict(r.params))
            for r in list(self.emulator._requests)
        ]

    def authorizations(self) -> list[str]:
        """The Authorization header of every request served so far ("" where none was sent)."""
        return [r.headers.get("Authorization", "") for r in list(self.emulator._requests)]

    def set_deployment_status(self, namespace: str, name: str, **status: Any) -> dict[str, Any]:
        """Replace the Deployment's status; observedGeneration defaults to the current generation."""

        def change(obj: dict[str, Any]) -> None:
            obj["status"] = {"observedGeneration": obj["metadata"]["generation"], **status}

        return self._update("Deployment", namespace, name, change)

    def complete_rollout(self, namespace: str, name: str) -> dict[str, Any]:
        deployment = self.get("Deployment", namespace, name)
        assert deployment is not None
        replicas = deployment["spec"].get("replicas", 1)
        return self.set_deployment_status(
            namespace,
            name,
            replicas=replicas,
            updatedReplicas=replicas,
            readyReplicas=replicas,
            availableReplicas=replicas,
            conditions=[
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        )

    def create_pod(
        self,
        namespace: str,
        deployment: str,
        suffix: str = "abc12",
        *,
        phase: str = "Pending",
        container_state: dict[str, Any] | None = None,
        last_state: dict[str, Any] | None = None,
        restart_count: int = 0,
        conditions: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A pod made from the Deployment's current template, as its ReplicaSet would make it."""
        template = (self.get("Deployment", namespace, deployment) or {})["spec"]["template"]
        container = template["spec"]["containers"][0]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-{suffix}",
                "namespace": namespace,
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"].get("annotations", {}),
            },
            "spec": template["spec"],
            "status": {"phase": phase, "conditions": conditions or []},
        }
        if container_state is not None:
            pod["status"]["containerStatuses"] = [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": restart_count,
                    "started": False,
                    "state": container_state,
                    "lastState": last_state or {},
                }
            ]
        return self.runner.call(lambda: self.emulator.store(resource_of("Pod"), namespace, pod))

    def add_event(
        self, namespace: str, kind: str, name: str, reason: str, message: str, type_: str = "Warning"
    ) -> dict[str, Any]:
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
        }
        return self.runner.call(lambda: self.emulator.store(resource_of("Event"), namespace, event))

    def set_log(self, namespace: str, pod: str, container: str, text: str, *, previous: bool = True) -> None:
        self.runner.call(lambda: self.emulator.logs.__setitem__((namespace, pod, container, previous), text))
