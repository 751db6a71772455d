"""Rendered overlays and a Kubernetes API emulator of this package's own.

The emulator is ``tests.deployments.k8s_emulator`` (the one the deployment tests use) on its own thread, with one
fix kmock 0.8 needs for cluster-scoped Namespaces: its path parser fails on ``/api/v1/namespaces`` and reads
``/api/v1/namespaces/NAME`` as a namespace without a resource. ``_namespace_paths`` parses exactly those two paths
as the ``namespaces`` resource and leaves every other path to kmock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kmock._internal import parsing

from tests.deploy.kustomize import render
from tests.deployments.k8s_emulator import EmulatorThread

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "aks")
_NAMESPACE_PATH = re.compile(r"^/?api/v1/namespaces(?:/([^/]+))?/?$")


def rendered(overlay: str) -> list[dict[str, Any]]:
    return render(KUBERNETES_DIR / "overlays" / overlay)


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


@pytest.fixture
def objects(overlay: str) -> list[dict[str, Any]]:
    return rendered(overlay)


def _namespace_paths(original):
    def parse_path(path: str) -> parsing.ParsedPath:
        match = _NAMESPACE_PATH.match(path)
        if match:
            return parsing.ParsedPath(group="", version="v1", plural="namespaces", name=match.group(1))
        return original(path)

    return parse_path


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatorThread]:
    """A fresh emulator for the module (the manifests use fixed namespaces, so it is not shared)."""
    original = parsing.parse_path
    parsing.parse_path = _namespace_paths(original)
    runner = EmulatorThread().start()
    try:
        yield runner
    finally:
        runner.stop()
        parsing.parse_path = original
