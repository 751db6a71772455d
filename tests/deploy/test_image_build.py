"""The control plane's image, built for real: buildah (daemonless, chroot isolation, vfs) builds deploy/Dockerfile
on the locally debootstrapped base image of the scoring-image test, then podman runs it as Kubernetes would
(read-only root, writable /tmp and var dir, non-root): ``migrate`` into a SQLite database on a volume, then
``web``, whose /healthz and login page answer 200 with the static files collected at build time; ``worker`` and
``beat`` start.

Needs root; the ``build_env`` fixture runs ``scoring-image/tools/setup_build_env.sh`` (idempotent, seconds when
warm) and the build goes through tests/images.py, whose storage keeps the base image and, while pyproject.toml's
pins are unchanged, the dependency layer from the last run (the code layers are always built anew). The build
context is the repository at HEAD with the working tree's deploy/ on top (other uncommitted work does not leak into
the image); MODELPLANE_IMAGE_CONTEXT=worktree builds the working tree as it is.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from importlib import metadata
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement

from tests.images import BASE_IMAGE, build, discard, tool, wheelhouse
from tests.scoring_image.helpers import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.slow


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def unpinned_imports(root: Path) -> dict[str, str]:
    """Top-level packages the app's code imports that neither pyproject.toml's pins nor their dependencies bring
    (the image installs exactly those): {package: first importing file}. The virtualenv may hold more."""
    pins = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(pin) for pin in pins]
    while todo:
        requirement = todo.pop()
        key = (_normalise(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            needed = Requirement(text)
            extras = set(requirement.extras) | {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(needed)
    installed = {name for name, _ in seen}
    distributions = metadata.packages_distributions()
    missing: dict[str, str] = {}
    for path in sorted([*(root / "apps").rglob("*.py"), *(root / "controlplane").rglob("*.py")]):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("apps", "controlplane", "scoring"):
                    continue
                if not {_normalise(d) for d in distributions.get(top, [top])} & installed:
                    missing.setdefault(top, str(path.relative_to(root)))
    return missing


def build_context(tmp_path: Path) -> Path:
    if os.environ.get("MODELPLANE_IMAGE_CONTEXT") == "worktree" or not (REPO_ROOT / ".git").exists():
        return REPO_ROOT
    context = tmp_path / "context"
    context.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(context)], input=archive.stdout, check=True)
    shutil.rmtree(context / "deploy", ignore_errors=True)
    shutil.copytree(REPO_ROOT / "deploy", context / "deploy")
    return context


def wait_for_log(container: str, needle: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = tool("podman", "logs", container, check=False)
        if needle in logs.stdout + logs.stderr:
            return
        state = json.loads(tool("podman", "inspect", container).stdout)[0]["State"]
        assert state["Running"], f"{container} exited {state['ExitCode']}:\n{logs.stdout}\n{logs.stderr}"
        time.sleep(1)
    raise AssertionError(f"{container} did not log {needle!r} within {timeout}s:\n{logs.stdout}\n{logs.stderr}")


def test_build_then_migrate_and_serve(build_env, tmp_path: Path) -> None:
    """The image holds only the pins of pyproject.toml, so code importing anything else cannot start in it."""
    context = build_context(tmp_path)
    unpinned = unpinned_imports(context)
    assert not unpinned, f"imported by the app but not pinned in pyproject.toml: {unpinned}"
    build_and_run(context, tmp_path)


def build_and_run(context: Path, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    image = f"localhost/modelplane-test/controlplane:{uuid.uuid4().hex[:12]}"
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the container's user (10001) writes the SQLite database here
    var = tmp_path / "var"  # MODELPLANE_VAR_DIR: here the SQLite broker worker and beat share, and beat's schedule
    var.mkdir()
    var.chmod(0o777)
    container = f"modelplane-web-{uuid.uuid4().hex[:8]}"
    runtime = [
        "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
        "-v", f"{var}:/var/lib/modelplane", "-v", f"{data}:/data",
        "-e", "DATABASE_URL=sqlite:////data/controlplane.sqlite3",
        "-e", "DJANGO_SECRET_KEY=image-test-only", "-e", "DJANGO_ALLOWED_HOSTS=127.0.0.1,localhost",
    ]  # fmt: skip
    try:
        started = time.monotonic()
        pins = tmp_path / "pins.txt"
        pins.write_text("\n".join(tomllib.loads((context / "pyproject.toml").read_text())["project"]["dependencies"]))
        wheelhouse(pins)
        timings["wheelhouse"] = time.monotonic() - started
        started = time.monotonic()
        build(
            context,
            image,
            dockerfile=context / "deploy" / "Dockerfile",
            build_args={"BASE_IMAGE": BASE_IMAGE},
            ignorefile=context / "deploy" / "Dockerfile.dockerignore",
        )
        timings["build"] = time.monotonic() - started
        config = json.loads(tool("podman", "image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "10001:10001"
        assert config["Entrypoint"] == ["/usr/local/bin/modelplane"] and config["Cmd"] == ["web"]

        started = time.monotonic()
        migrate = tool("podman", "run", "--rm", *runtime, image, "migrate", timeout=300)
        timings["migrate"] = time.monotonic() - started
        assert "Applying accounts.0001_initial" in migrate.stdout
        assert (data / "controlplane.sqlite3").stat().st_size > 0

        port = free_port()
        started = time.monotonic()
        tool("podman", "run", "-d", "--name", container, *runtime, "-e", f"PORT={port}", image, "web")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/healthz", timeout=120)
        except TimeoutError:
            logs = tool("podman", "logs", container, check=False)
            raise AssertionError(f"web never answered:\n{logs.stdout}\n{logs.stderr}") from None
        timings["web start"] = time.monotonic() - started

        login = requests.get(url + "/accounts/login/", timeout=10)
        assert login.status_code == 200, login.text[:2000]
        # Static files were collected into the image and are served with hashed names (WhiteNoise manifest).
        static = re.findall(r'(?:href|src)="(/static/[^"]+\.[0-9a-f]{12}\.(?:css|js))"', login.text)
        assert static, "no hashed static file referenced by the login page"
        assert requests.get(url + static[0], timeout=10).status_code == 200
        assert tool("podman", "exec", container, "id", "-u").stdout.strip() == "10001"

        # The worker and beat roles start under the same constraints (sharing the SQLite broker in the var dir).
        started = time.monotonic()
        for role in ("worker", "beat"):
            tool("podman", "run", "-d", "--name", f"{container}-{role}", *runtime, image, role)
        wait_for_log(f"{container}-worker", "ready.", timeout=120)
        wait_for_log(f"{container}-beat", "beat: Starting", timeout=120)
        timings["worker and beat start"] = time.monotonic() - started
    finally:
        for name in (container, f"{container}-worker", f"{container}-beat"):
            tool("podman", "rm", "-f", name, check=False)
        discard(image)
        print("control plane image timings (s):", {k: round(v, 1) for k, v in timings.items()})
