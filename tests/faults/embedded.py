"""Real servers for fault tests: a Redis server of a test's own (:func:`redis_server`), and the control plane as
its embedded default runs it (SQLite database unless told otherwise) served by a real gunicorn process on
loopback (:func:`gunicorn`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import requests
from django.conf import settings

from tests.registries import Registry, free_port

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
from apps.accounts.choices import Role
from apps.accounts.models import User
from apps.accounts.services import api_token_create
from apps.deployments.services import environment_ensure
environment_ensure(name="dev", order=1, gated=False)
lead = User.objects.create_user(username="lena", password="x" * 20, role=Role.LEAD)
print("TOKEN=" + api_token_create(user=lead, name="load").key)
"""


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    env: dict[str, str]
    var_dir: Path


def embedded_env(var_dir: Path, registry: Registry, **extra: str) -> dict[str, str]:
    """The process environment of the embedded default in ``var_dir``: no DATABASE_URL, REDIS_URL or broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        MODELPLANE_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        MLFLOW_TRACKING_URI=registry.tracking_uri,
        MLFLOW_REGISTRY_URI=registry.tracking_uri,
        MLFLOW_ARTIFACT_ROOT=registry.artifact_root,
        DJANGO_STATIC_ROOT=str(settings.STATIC_ROOT),  # collected once per session (tests/conftest.py)
        **extra,
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@contextlib.contextmanager
def gunicorn(
    var_dir: Path, registry: Registry, *, workers: int = 3, threads: int = 4, **extra: str
) -> Iterator[Server]:
    """Migrate, add a dev environment and an ML lead with a token, serve with gunicorn; stop on exit."""
    env = embedded_env(var_dir, registry, **extra)
    manage(env, "migrate", "--no-input", "-v", "0")
    token = next(line for line in manage(env, "shell", "-c", SETUP).splitlines() if line.startswith("TOKEN="))[6:]
    port = free_port()
    log = (var_dir / "gunicorn.log").open("ab")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "controlplane.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(workers), "--threads", str(threads), "--timeout", "120", "--preload"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=30).status_code == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, (var_dir / "gunicorn.log").read_text()
            time.sleep(0.3)
        yield Server(url=url, token=token, env=env, var_dir=var_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@contextlib.contextmanager
def redis_server(port: int, directory) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(redis.ConnectionError):
            if client.ping():
                break
        time.sleep(0.1)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
