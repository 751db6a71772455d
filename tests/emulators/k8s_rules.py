"""What the Kubernetes API server refuses, for the emulator in ``k8s.py``: names per kind, label keys and
values, resource quantities (and request <= limit), the immutable Deployment selector, and server-side apply
field ownership with conflicts. Messages follow the API server's wording (k8s.io/apimachinery validation,
k8s.io/kubernetes pkg/apis/core/validation, structured-merge-diff), so the client sees what a cluster says.

Written apart from the control plane's own rules (apps/deployments/naming.py, quantities.py) on purpose: a
test must be able to catch those being wrong.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

from kmock import KubernetesError

__all__ = ["validate", "FieldOwners", "GROUPS"]

GROUPS = {"Deployment": "apps", "ReplicaSet": "apps", "HorizontalPodAutoscaler": "autoscaling"}
GROUPS |= {"PodDisruptionBudget": "policy", "Job": "batch", "HTTPRoute": "gateway.networking.k8s.io"}
_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = f"(({_QUALIFIED_NAME}))?"
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    f"with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_DNS1123_LABEL}')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS1123_SUBDOMAIN}')"
)
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    f"is '{_DNS1035_LABEL}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    f"validation is '{_LABEL_VALUE}')"
)
QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_SUFFIXES = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6}
_SUFFIXES |= {"G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_SUFFIXES |= {s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))}


class _Quantity(Exception):
    pass


def _quantity(text: Any) -> Decimal:
    match = re.match(QUANTITY_REGEX, str(text))
    if not match or match.group(1).count(".") > 1 or match.group(1).strip("+-") in ("", "."):
        raise _Quantity(text)
    number, suffix = match.groups()
    if suffix in _SUFFIXES:
        return Decimal(number) * Decimal(_SUFFIXES[suffix])
    if re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    raise _Quantity(text)


def _name_errors(kind: str, name: str) -> list[str]:
    if kind == "Service":
        pattern, message, limit = _DNS1035_LABEL, DNS1035_LABEL_MSG, 63
    elif kind == "Namespace":
        pattern, message, limit = _DNS1123_LABEL, DNS1123_LABEL_MSG, 63
    else:
        pattern, message, limit = _DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MSG, 253
    errors = []
    if len(name) > limit:
        errors.append(f'metadata.name: Invalid value: "{name}": must be no more than {limit} characters')
    if not re.fullmatch(pattern, name):
        errors.append(f'metadata.name: Invalid value: "{name}": {message}')
    return errors


def _label_errors(path: str, labels: dict[str, Any]) -> list[str]:
    errors = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not re.fullmatch(_DNS1123_SUBDOMAIN, prefix)) or not re.fullmatch(_QUALIFIED_NAME, name):
            errors.append(f'{path}: Invalid value: "{key}": name part must consist of alphanumeric characters')
        if len(str(value)) > 63:
            errors.append(f'{path}: Invalid value: "{value}": must be no more than 63 characters')
        if not re.fullmatch(_LABEL_VALUE, str(value)):
            errors.append(f'{path}: Invalid value: "{value}": {LABEL_VALUE_MSG}')
    return errors


def _containers(kind: str, obj: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return "spec.containers", spec.get("containers") or []
    if kind in ("Deployment", "ReplicaSet", "Job"):
        return "spec.template.spec.containers", ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return "", []


def _resource_errors(kind: str, obj: dict[str, Any]) -> list[str]:
    path, containers = _containers(kind, obj)
    errors = []
    for i, container in enumerate(containers):
        resources = container.get("resources") or {}
        parsed: dict[str, dict[str, Decimal]] = {}
        for which in ("requests", "limits"):
            for resource, text in (resources.get(which) or {}).items():
                try:
                    parsed.setdefault(which, {})[resource] = _quantity(text)
                except _Quantity:
                    raise KubernetesError(
                        status=400,
                        reason="BadRequest",
                        message=f'{kind} in version "v1" cannot be handled as a {kind}: quantities must match the '
                        f"regular expression '{QUANTITY_REGEX}'",
                    ) from None
        for resource, request in parsed.get("requests", {}).items():
            limit = parsed.get("limits", {}).get(resource)
            if limit is not None and request > limit:
                text, limit_text = resources["requests"][resource], resources["limits"][resource]
                errors.append(
                    f'{path}[{i}].resources.requests: Invalid value: "{text}": must be less than or equal to '
                    f"{resource} limit of {limit_text}"
                )
    return errors


def validate(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise the API server's refusal of ``obj`` (replacing ``old``, if any): 422 Invalid or 400 BadRequest."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    errors = _name_errors(kind, name) + _label_errors("metadata.labels", meta.get("labels") or {})
    template = (obj.get("spec") or {}).get("template") or {}
    errors += _label_errors("spec.template.metadata.labels", (template.get("metadata") or {}).get("labels") or {})
    errors += _resource_errors(kind, obj)
    if kind == "Deployment" and old is not None:
        before, after = (old.get("spec") or {}).get("selector"), (obj.get("spec") or {}).get("selector")
        if before != after:
            errors.append(f"spec.selector: Invalid value: {after!r}: field is immutable")
    if errors:
        group = GROUPS.get(kind)
        qualified = f"{kind}.{group}" if group else kind
        detail = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise KubernetesError(status=422, reason="Invalid", message=f'{qualified} "{name}" is invalid: {detail}')


# ---------------------------------------------------------------------------------------------- field ownership
Path = tuple[str, ...]


def _leaves(obj: Any, prefix: Path = ()) -> dict[Path, Any]:
    """The fields an object sets, as paths to leaves; lists are atomic (whole-list ownership)."""
    if not isinstance(obj, dict) or (not obj and prefix):
        return {prefix: obj}
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        out |= _leaves(value, (*prefix, key))
    return out


def owned_fields(obj: dict[str, Any]) -> dict[Path, Any]:
    """The fields subject to ownership: spec and the like, labels and annotations; not status or identity."""
    leaves = _leaves({k: v for k, v in obj.items() if k not in ("status", "apiVersion", "kind")})
    return {p: v for p, v in leaves.items() if p[0] != "metadata" or (len(p) > 2 and p[1] in ("labels", "annotations"))}


def _set(obj: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def _remove(obj: dict[str, Any], path: Path) -> None:
    parents = [obj]
    for key in path[:-1]:
        obj = obj.get(key)
        if not isinstance(obj, dict):
            return
        parents.append(obj)
    obj.pop(path[-1], None)
    for depth in range(len(path) - 2, -1, -1):  # prune what became empty
        if not parents[depth + 1]:
            parents[depth].pop(path[depth], None)


def _overlap(a: Path, b: Path) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


class FieldOwners:
    """managedFields, simplified: manager -> the field paths it set, per object."""

    def __init__(self) -> None:
        self.by_object: dict[Any, dict[str, set[Path]]] = {}

    def apply(
        self, key: Any, old: dict[str, Any] | None, body: dict[str, Any], *, manager: str, force: bool
    ) -> dict[str, Any]:
        """The object after ``manager`` applies ``body``: refuses (409) to change a field another manager owns
        unless ``force``; fields this manager stops applying are removed unless another manager owns them."""
        owners = self.by_object.setdefault(key, {})
        current = owned_fields(old) if old is not None else {}
        applied = owned_fields(body)
        conflicts: dict[str, list[Path]] = {}
        for path, value in applied.items():
            for other, paths in owners.items():
                if other == manager:
                    continue
                for owned in paths:
                    if _overlap(owned, path) and (owned != path or current.get(path) != value):
                        conflicts.setdefault(other, []).append(owned)
        if conflicts and not force:
            message = _conflict_message(conflicts, str(body.get("apiVersion") or "v1"))
            raise KubernetesError(status=409, reason="Conflict", message=message)
        result: dict[str, Any] = copy.deepcopy(old or {})
        mine_before = owners.get(manager, set())
        others = set().union(*(p for m, p in owners.items() if m != manager)) if owners else set()
        for path in mine_before - set(applied) - others:
            _remove(result, path)
        for path, value in applied.items():
            _set(result, path, copy.deepcopy(value))
        for other in list(owners):
            if other != manager and force:
                owners[other] = {p for p in owners[other] if not any(_overlap(p, a) for a in applied)}
        owners[manager] = set(applied)
        result["apiVersion"], result["kind"] = body.get("apiVersion"), body.get("kind")
        result.setdefault("metadata", {})["name"] = body["metadata"]["name"]
        return result

    def update(self, key: Any, old: dict[str, Any] | None, new: dict[str, Any], manager: str) -> None:
        """A non-apply write (PUT, PATCH, a controller): ``manager`` takes the fields it changed."""
        owners = self.by_object.setdefault(key, {})
        before, after = (owned_fields(old) if old else {}), owned_fields(new)
        changed = {p for p, v in after.items() if before.get(p, object()) != v}
        if not changed:
            return
        for other in owners:
            owners[other] -= changed
        owners.setdefault(manager, set()).update(changed)

    def forget(self, key: Any) -> None:
        self.by_object.pop(key, None)


def _conflict_message(conflicts: dict[str, list[Path]], api_version: str) -> str:
    count = sum(len(paths) for paths in conflicts.values())
    parts = []
    for manager, paths in conflicts.items():
        fields = ["." + ".".join(p) for p in sorted(set(paths))]
        if len(fields) == 1:
            parts.append(f'conflict with "{manager}" using {api_version}: {fields[0]}')
        else:
            parts.append(f'conflicts with "{manager}" using {api_version}:\n' + "\n".join(f"- {f}" for f in fields))
    return f"Apply failed with {count} conflict{'s' if count != 1 else ''}: " + "\n".join(parts)
