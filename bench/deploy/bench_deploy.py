"""Click -> task running: how long from a Deploy request until a warm worker is executing the rollout.

Runs the real pieces: the API view in-process (Django test client), a Celery worker process on Redis,
PostgreSQL (or SQLite with --sqlite), the SQLite MLflow registry with the demo models, the local target.
Each iteration deploys the other credit-default version to ``dev`` and waits for it to go live before the
next, so the worker is warm and idle when the click happens.

    .venv/bin/python bench/deploy/bench_deploy.py [-n 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "var" / "bench-deploy"


def _configure(sqlite: bool) -> None:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        MODELPLANE_VAR_DIR=str(BENCH_DIR),
        DATABASE_URL=f"sqlite:///{BENCH_DIR / 'db.sqlite3'}"
        if sqlite
        else "postgres://postgres@127.0.0.1:5432/modelplane_bench",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/12",
        REDIS_URL="redis://127.0.0.1:6379/12",
        DJANGO_ALLOWED_HOSTS="testserver",
        LOG_LEVEL="WARNING",
    )
    if not sqlite:
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "modelplane_bench"], capture_output=True)
    sys.path.insert(0, str(ROOT))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--iterations", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL for the control plane")
    args = parser.parse_args()
    _configure(args.sqlite)

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from apps.accounts.models import User
    from apps.deployments.models import Deployment, Revision

    call_command("migrate", verbosity=0)
    call_command("demo_setup", stdout=open(os.devnull, "w"))
    lead = User.objects.get(username="lead")
    client = Client()
    client.force_login(lead)
    for deployment in Deployment.objects.exclude(status="deleted"):
        Deployment.objects.filter(pk=deployment.pk).update(status="deleted")

    log = open(BENCH_DIR / "worker.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "--pool", "solo", "--loglevel", "WARNING"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    post_ms: list[float] = []
    running_ms: list[float] = []
    try:
        for i in range(args.iterations + 1):  # the first deploy warms the worker and is not counted
            version = "1" if i % 2 == 0 else "2"
            started = time.perf_counter()
            response = client.post(
                "/api/v1/deployments/",
                {"model": "credit-default", "version": version, "environment": "dev"},
                content_type="application/json",
            )
            answered = time.perf_counter()
            assert response.status_code == 202, response.content
            revision_id = response.json()["id"]
            while Revision.objects.filter(pk=revision_id, status="queued").exists():
                time.sleep(0.001)
            running = time.perf_counter()
            deadline = time.monotonic() + 180
            while Revision.objects.filter(pk=revision_id, status__in=["queued", "running"]).exists():
                assert time.monotonic() < deadline, "rollout did not finish"
                time.sleep(0.05)
            status = Revision.objects.get(pk=revision_id).status
            assert status == "live", f"revision {revision_id} ended {status}"
            if i:
                post_ms.append((answered - started) * 1000)
                running_ms.append((running - started) * 1000)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        for deployment in Deployment.objects.exclude(status="deleted"):
            revision = deployment.revisions.first()
            from apps.deployments import pipeline

            pipeline.target_for(deployment, revision.config).delete(pipeline.serving_spec(revision), lambda line: None)
            Deployment.objects.filter(pk=deployment.pk).update(status="deleted")

    database = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"{args.iterations} deploys, {database}, Redis broker, warm idle worker, {os.cpu_count()} cores")
    print("| measure | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, values in [("POST /api/v1/deployments/ answered (202)", post_ms), ("click -> task running", running_ms)]:
        print(f"| {name} | {statistics.median(values):.1f} | {_pct(values, 0.95):.1f} | {max(values):.1f} |")


if __name__ == "__main__":
    main()
