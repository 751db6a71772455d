"""Fixtures for the Kubernetes API emulator; import them into a conftest or a test module.

``k8s_api`` is one emulator for the session (tests keep apart by namespace: see ``k8s_namespace``);
``k8s_controller`` is the test's hand as the cluster's controllers and kubelets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.deployments.k8s_emulator import Controller, EmulatorThread

__all__ = ["k8s_api", "k8s_controller", "k8s_namespace"]

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def k8s_api() -> Iterator[EmulatorThread]:
    """The running emulator; ``k8s_api.url`` is its base URL (http://127.0.0.1:<free port>)."""
    runner = EmulatorThread().start()
    yield runner
    runner.stop()


@pytest.fixture
def k8s_controller(k8s_api: EmulatorThread) -> Controller:
    return Controller(k8s_api)


@pytest.fixture
def k8s_namespace() -> str:
    """A namespace no other test uses, so one emulator serves the whole session."""
    return f"test-{next(_namespaces)}"
