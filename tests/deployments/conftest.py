from __future__ import annotations

import json
import os
import signal

import pytest

from apps.deployments.models import Environment
from apps.deployments.services import environment_ensure
from tests.deployments.conftest_k8s import k8s_api, k8s_controller, k8s_namespace  # noqa: F401 - fixtures


@pytest.fixture
def environments(db) -> dict[str, Environment]:
    specs = [("dev", 1, False), ("staging", 2, False), ("production", 3, True)]
    return {name: environment_ensure(name=name, order=order, gated=gated)[0] for name, order, gated in specs}


@pytest.fixture
def local_dirs(settings, tmp_path):
    """Each test's local scoring processes, model copies and telemetry in its own folder."""
    settings.DEPLOY_LOCAL_DIR = tmp_path / "local-target"
    settings.DEPLOY_MODEL_CACHE = tmp_path / "models"
    settings.TELEMETRY_DIR = tmp_path / "telemetry"
    return tmp_path


@pytest.fixture
def worker_env(local_dirs) -> dict[str, str]:
    return {
        "DEPLOY_LOCAL_DIR": str(local_dirs / "local-target"),
        "DEPLOY_MODEL_CACHE": str(local_dirs / "models"),
        "TELEMETRY_DIR": str(local_dirs / "telemetry"),
        "DEPLOY_LEASE_SECONDS": "4",
    }


@pytest.fixture
def teardown_local(local_dirs):
    yield
    for state in (local_dirs / "local-target").glob("*/*/*.json"):
        pid = json.loads(state.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
