"""A small pure-Python renderer of the kustomize subset deploy/kubernetes uses, for the tests.

Neither ``kubectl kustomize`` nor a ``kustomize`` binary is installable on the test machine, so the tests render
the overlays themselves. The subset is kept deliberately small and anything outside it is refused, so a manifest
that real kustomize would render differently cannot slip through:

- ``resources``: YAML files (several documents each) and directories holding a ``kustomization.yaml``;
- ``patches``: ``{path: FILE}`` strategic-merge patches, one object per file naming its target by apiVersion,
  kind, metadata.name and metadata.namespace (lists of containers, env, volumes, volumeMounts, ports merge by their key;
  other lists are replaced; ``null`` deletes a field), as ``kubectl kustomize`` does for built-in kinds;
- ``images``: ``{name, newName, newTag}`` applied to the containers and init containers of every pod template.

No namespace transformer, generators, name prefixes or common labels: deploy/kubernetes uses none of them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.deployments.k8s_emulator import strategic_merge

__all__ = ["render", "object_key", "pod_specs", "containers"]

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "images"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(ValueError):
    pass


def object_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"]


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path | str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIRECTORY`` prints, in resource order."""
    directory = Path(directory)
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{directory}: not a Kustomization")

    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources") or []:
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else _load(path)
    index: dict[tuple[str, str, str, str], int] = {}
    for position, obj in enumerate(objects):
        key = object_key(obj)
        if key in index:
            raise KustomizeError(f"{directory}: {key} defined twice")
        index[key] = position

    for patch in kustomization.get("patches") or []:
        if set(patch) != {"path"}:
            raise KustomizeError(f"{directory}: only {{path: FILE}} patches are supported, not {patch}")
        docs = _load(directory / patch["path"])
        if len(docs) != 1:  # one object per patch file, the form every kustomize version reads the same way
            raise KustomizeError(f"{directory}/{patch['path']}: a patch file holds exactly one object")
        for doc in docs:
            key = object_key(doc)
            if key not in index:
                raise KustomizeError(f"{directory}/{patch['path']}: no object {key} to patch")
            objects[index[key]] = strategic_merge(objects[index[key]], doc)

    for image in kustomization.get("images") or []:
        if set(image) - {"name", "newName", "newTag"}:
            raise KustomizeError(f"{directory}: unsupported image fields in {image}")
        for obj in objects:
            for container in containers(obj):
                name, tag = _split_image(container["image"])
                if name == image["name"]:
                    new_tag = image.get("newTag", tag)
                    container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")
    return [copy.deepcopy(obj) for obj in objects]


def _split_image(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # no tag, or the colon was a registry port
        return ref, ""
    return name, tag


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] in POD_TEMPLATE_KINDS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for spec in pod_specs(obj) for c in spec.get("initContainers", []) + spec.get("containers", [])]
