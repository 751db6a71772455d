"""apps/common knows no domain: it imports no other app. What needs every app is composed elsewhere
(the status page in controlplane/status.py, the demo in apps/demo)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from apps.common.status import StatusCheck
from controlplane.status import STATUS_CHECKS

COMMON = Path(__file__).resolve().parents[2] / "apps" / "common"


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_apps_common_imports_no_other_app():
    offenders = {
        f"{path.relative_to(COMMON)}: {module}"
        for path in COMMON.rglob("*.py")
        for module in _imported_modules(path)
        if module.startswith("apps.") and not module.startswith("apps.common")
    }
    assert not offenders, offenders


@pytest.mark.django_db
def test_the_status_page_shows_each_composed_check_and_says_what_is_down(carol_client, settings):
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://ops:secret@127.0.0.1:9"  # nothing listens
    response = carol_client.get("/status/")
    assert response.status_code == 200
    checks = {check.name: check for check in response.context["checks"]}
    assert list(checks) == ["Database", "MLflow registry", "Task broker", "Cache", "Worker"]
    assert len(STATUS_CHECKS) == len(checks) and all(isinstance(c, StatusCheck) for c in checks.values())
    registry = checks["MLflow registry"]
    assert (registry.ok, registry.state, registry.pill) == (False, "unreachable", "bad") and registry.error
    assert b"secret" not in response.content and b"unreachable" in response.content
    assert checks["Database"].ok and checks["Worker"].pill in ("ok", "warn")
