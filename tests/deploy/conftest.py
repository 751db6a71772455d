"""The overlays rendered by the real ``kubectl kustomize`` (Debian's kubectl; ``scripts/services_up.sh`` installs it
when missing), and a Kubernetes API emulator of this package's own (``tests.emulators.k8s``)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulators.k8s import EmulatorThread

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "aks")
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


@functools.cache
def _kustomize(directory: Path) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: run scripts/services_up.sh (it installs Debian's kubectl)"
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return result.stdout


def render(directory: Path | str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIRECTORY`` prints (a fresh copy each call: tests may change them)."""
    return [doc for doc in yaml.safe_load_all(_kustomize(Path(directory).resolve())) if doc]


def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(KUBERNETES_DIR / "overlays" / overlay)


def object_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"]


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


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


@pytest.fixture
def objects(overlay: str) -> list[dict[str, Any]]:
    return rendered(overlay)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatorThread]:
    """A fresh emulator for the module (the manifests use fixed namespaces, so it is not shared)."""
    runner = EmulatorThread().start()
    try:
        yield runner
    finally:
        runner.stop()
