"""Real Celery worker processes for end-to-end tests, on the broker and database the test uses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection


def database_url() -> str:
    """The test database (pytest-django's ``test_*``), as a URL the worker's settings understand."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def start_worker(
    log: Path, *, broker_url: str | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL,
        "MLFLOW_TRACKING_URI": settings.MLFLOW_TRACKING_URI,
        "MLFLOW_REGISTRY_URI": settings.MLFLOW_REGISTRY_URI,
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        *args,
    ]
    return subprocess.Popen(
        command, env=environment, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_worker(process: subprocess.Popen, *, kill: bool = False) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_worker(log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    process = start_worker(log, **kwargs)
    try:
        yield process
    finally:
        stop_worker(process)


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, log: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def kill_during_rollout(start: Callable[[], int], *, log: Path, env: dict[str, str]) -> int:
    """Start a worker, ``start()`` a revision (returns its id), wait until its rollout step runs, then SIGKILL the
    worker (no chance to clean up or acknowledge). Returns the revision's id."""
    from apps.deployments.models import RevisionStep

    worker = start_worker(log, env=env)
    try:
        revision_id = start()
        wait_for(
            lambda: RevisionStep.objects.filter(revision_id=revision_id, name="rollout", status="running").exists(),
            timeout=120,
            what="the rollout step to start",
            log=log,
        )
    finally:
        stop_worker(worker, kill=True)
    return revision_id
