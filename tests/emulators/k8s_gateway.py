"""Gateway API for the Kubernetes emulator (``k8s.py``): what the API server admits as an HTTPRoute once the
Gateway API CRDs are installed, and refuses as it would.

The rules are the CRD's own: ``schemas/httproute-<version>.json`` is the ``openAPIV3Schema`` of
``httproutes.gateway.networking.k8s.io`` v1 from that Gateway API release (standard channel; the file says where
from): v1.3.0, and v1.2.1, which AKS's managed Gateway API installs below Kubernetes 1.34 (no mirror percent),
checked with ``jsonschema`` and answered in the API server's words (apiextensions-apiserver / kube-openapi). On top:
the structural schema's pruning of unknown fields (refused with ``fieldValidation=Strict``, dropped otherwise), its
defaults, and, of the CRD's CEL rules (``x-kubernetes-validations``), those a route of ours can meet: a Service
backendRef needs a port, a mirror has ``percent`` or ``fraction`` (not both, numerator <= denominator), a filter
carries the field of its type and no other, no redirect together with backendRefs, a path rewrite with exactly one
PathPrefix match. The other CEL rules are not evaluated.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from kmock import KubernetesError

__all__ = [
    "GATEWAY_GROUP",
    "VERSIONS",
    "route_schema",
    "strict_fields",
    "admit_route",
    "route_errors",
    "no_gateway_api",
    "GatewayController",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
SCHEMAS = Path(__file__).parent / "schemas"
VERSIONS = ("v1.3.0", "v1.2.1")
LATEST = VERSIONS[0]
_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "ExtensionRef": "extensionRef",
}


@cache
def route_schema(version: str = LATEST) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"httproute-{version}.json").read_text())["openAPIV3Schema"]


def no_gateway_api() -> KubernetesError:
    """What a cluster without the Gateway API CRDs answers for their group: the API server's plain 404."""
    return KubernetesError(status=404, reason="NotFound", message="the server could not find the requested resource")


# ---------------------------------------------------------------------------------------------- structure
def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unknown(obj: Any, schema: dict[str, Any], path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Paths of fields the structural schema does not declare (metadata is the API server's, not the CRD's)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                found.append((*path, key))
            elif path or key != "metadata":
                found += _unknown(value, schema["properties"][key], (*path, key))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            found += _unknown(item, schema["items"], (*path, i))
    return found


def strict_fields(body: Any, field_validation: str | None, version: str = LATEST) -> None:
    """``fieldValidation=Strict`` (kubectl's default): a field the CRD does not declare fails the request (400)."""
    if (field_validation or "").lower() != "strict" or not isinstance(body, dict):
        return
    unknown = _unknown(body, route_schema(version), ())
    if unknown:
        fields = ", ".join(f'unknown field "{_path(p)}"' for p in unknown)
        raise KubernetesError(status=400, reason="BadRequest", message=f"strict decoding error: {fields}")


def _prune(obj: Any, schema: dict[str, Any], top: bool = True) -> None:
    if isinstance(obj, dict) and "properties" in schema:
        for key in list(obj):
            if key not in schema["properties"]:
                del obj[key]
            elif not top or key != "metadata":
                _prune(obj[key], schema["properties"][key], False)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _prune(item, schema["items"], False)


def _default(obj: Any, schema: dict[str, Any]) -> None:
    """Structural defaulting: an absent property with a ``default`` gets it, then defaulting goes on inside."""
    if isinstance(obj, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _default(obj[key], sub)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _default(item, schema["items"])


# ---------------------------------------------------------------------------------------------- the schema's rules
def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else ("object" if isinstance(value, dict | list) else str(value))


def _schema_error(error: jsonschema.ValidationError) -> list[str]:
    where = _path(error.absolute_path)
    rule, limit, value = error.validator, error.validator_value, error.instance
    if rule == "required":
        prefix = f"{where}." if where else ""
        return [f"{prefix}{name}: Required value" for name in limit if name not in value]
    if rule == "minimum":
        return [f"{where}: Invalid value: {value}: {where} in body should be greater than or equal to {limit}"]
    if rule == "maximum":
        return [f"{where}: Invalid value: {value}: {where} in body should be less than or equal to {limit}"]
    if rule == "maxItems":
        return [f"{where}: Too many: {len(value)}: must have at most {limit} items"]
    if rule == "minItems":
        return [f"{where}: Invalid value: {len(value)}: {where} in body should have at least {limit} items"]
    if rule == "maxLength":
        return [f"{where}: Too long: may not be more than {limit} bytes"]
    if rule == "minLength":
        return [f"{where}: Invalid value: {_value(value)}: {where} in body should be at least {limit} chars long"]
    if rule == "pattern":
        return [f"{where}: Invalid value: {_value(value)}: {where} in body should match '{limit}'"]
    if rule == "enum":
        supported = ", ".join(json.dumps(v) for v in limit)
        return [f"{where}: Unsupported value: {_value(value)}: supported values: {supported}"]
    if rule == "type":
        kind = type(value).__name__.replace("str", "string").replace("dict", "object").replace("list", "array")
        return [
            f"{where}: Invalid value: {json.dumps(kind)}: {where} in body must be of type {limit}: {json.dumps(kind)}"
        ]
    return [f"{where}: Invalid value: {_value(value)}: {error.message}"]


def _cel_errors(spec: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    for r, rule in enumerate(spec.get("rules") or []):
        at = f"spec.rules[{r}]"
        refs, filters = rule.get("backendRefs") or [], rule.get("filters") or []
        if refs and any("requestRedirect" in f for f in filters):
            errors.append(
                f'{at}: Invalid value: "object": RequestRedirect filter must not be used together with backendRefs'
            )
        rewrites = [
            f for f in filters if ((f.get("urlRewrite") or {}).get("path") or {}).get("type") == "ReplacePrefixMatch"
        ]
        prefixes = [m for m in rule.get("matches") or [] if ((m.get("path") or {}).get("type")) == "PathPrefix"]
        if rewrites and (len(rewrites) != 1 or len(rule.get("matches") or []) != 1 or len(prefixes) != 1):
            errors.append(
                f'{at}: Invalid value: "object": When using URLRewrite filter with path.replacePrefixMatch, exactly '
                "one PathPrefix match must be specified"
            )
        errors += _filter_errors(f"{at}.filters", filters)
        for b, ref in enumerate(refs):
            errors += _service_port(f"{at}.backendRefs[{b}]", ref)
            errors += _filter_errors(f"{at}.backendRefs[{b}].filters", ref.get("filters") or [])
    return errors


def _service_port(at: str, ref: dict[str, Any]) -> list[str]:
    if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service" and "port" not in ref:
        return [f'{at}: Invalid value: "object": Must have port for Service reference']
    return []


def _filter_errors(at: str, filters: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for i, item in enumerate(filters):
        kind = item.get("type")
        for other, field in _FILTER_FIELDS.items():
            if field in item and kind != other:
                errors.append(
                    f'{at}[{i}]: Invalid value: "object": filter.{field} must be nil if the filter.type is not {other}'
                )
            if field not in item and kind == other:
                errors.append(
                    f'{at}[{i}]: Invalid value: "object": filter.{field} must be specified for {other} filter.type'
                )
        mirror = item.get("requestMirror")
        if isinstance(mirror, dict):
            if "percent" in mirror and "fraction" in mirror:
                errors.append(
                    f'{at}[{i}].requestMirror: Invalid value: "object": Only one of percent or fraction may be '
                    "specified in HTTPRequestMirrorFilter"
                )
            fraction = mirror.get("fraction") or {}
            if fraction and int(fraction.get("numerator", 0)) > int(fraction.get("denominator", 100)):
                errors.append(
                    f'{at}[{i}].requestMirror.fraction: Invalid value: "object": numerator must be less than or equal '
                    "to denominator"
                )
            errors += _service_port(f"{at}[{i}].requestMirror.backendRef", mirror.get("backendRef") or {})
    return errors


def route_errors(obj: dict[str, Any], version: str = LATEST) -> list[str]:
    """What the API server says is wrong with the (defaulted) HTTPRoute ``obj``, in its words; [] when valid."""
    validator = jsonschema.Draft7Validator(route_schema(version))
    errors: list[str] = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
        errors += _schema_error(error)
    if not errors:  # the CEL rules run on a value the schema admits
        errors += _cel_errors(obj.get("spec") or {})
    return errors


def admit_route(obj: dict[str, Any], version: str = LATEST) -> dict[str, Any]:
    """``obj`` as stored: unknown fields pruned, defaults set; or the API server's 422 naming every problem."""
    admitted = copy.deepcopy(obj)
    _prune(admitted, route_schema(version))
    _default(admitted, route_schema(version))
    errors = route_errors(admitted, version)
    if errors:
        name = (admitted.get("metadata") or {}).get("name", "")
        detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise KubernetesError(
            status=422, reason="Invalid", message=f'HTTPRoute.{GATEWAY_GROUP} "{name}" is invalid: {detail}'
        )
    return admitted


@dataclass
class GatewayController:
    """What a Gateway implementation's controller writes on an HTTPRoute: ``status.parents``, one entry per
    parentRef it owns, with ``Accepted`` (``NotAllowedByListeners`` when no listener of that Gateway allows routes
    from the route's namespace) and ``ResolvedRefs`` (``BackendNotFound`` for a Service that does not exist), each
    with the route's ``observedGeneration``. ``gateways``: "namespace/name" -> the namespaces its listeners allow
    routes from (None: all); a parentRef to any other Gateway is not this controller's and gets no status. Written
    as the route is stored, as if the controller reconciled at once."""

    gateways: dict[str, set[str] | None] | None = None  # None: every Gateway is ours and allows every namespace
    name: str = "example.net/gateway-controller"

    def status(self, route: dict[str, Any], services: set[str]) -> dict[str, Any] | None:
        namespace = route["metadata"]["namespace"]
        generation = route["metadata"].get("generation", 1)
        parents = []
        for ref in route["spec"].get("parentRefs", []):
            key = f"{ref.get('namespace', namespace)}/{ref['name']}"
            if self.gateways is not None and key not in self.gateways:
                continue
            allowed = None if self.gateways is None else self.gateways[key]
            if allowed is None or namespace in allowed:
                accepted = ("True", "Accepted", "Route is accepted")
            else:
                refusal = f"No listener of Gateway {key} allows routes from {namespace}"
                accepted = ("False", "NotAllowedByListeners", refusal)
            missing = sorted(
                backend["name"]
                for rule in route["spec"].get("rules", [])
                for backend in [*rule.get("backendRefs", []), *_mirrors(rule)]
                if backend.get("kind", "Service") == "Service" and backend["name"] not in services
            )
            resolved = (
                ("False", "BackendNotFound", f"Service {missing[0]} not found")
                if missing
                else ("True", "ResolvedRefs", "Resolved all the Object references for the Route")
            )
            conditions = [
                {"type": kind, "status": state, "reason": reason, "message": message,
                 "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for kind, (state, reason, message) in (("Accepted", accepted), ("ResolvedRefs", resolved))
            ]  # fmt: skip
            parents.append({"parentRef": ref, "controllerName": self.name, "conditions": conditions})
        return {"parents": parents} if parents else None


def _mirrors(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [f["requestMirror"]["backendRef"] for f in rule.get("filters", []) if f.get("type") == "RequestMirror"]
