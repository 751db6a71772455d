"""Issue 17 item 4: the embedded SQLite database takes concurrent writers. Twelve simultaneous deploy requests
(three gunicorn processes of four threads, each with its own connection) answer 202 once and 409 otherwise:
never "database is locked" (a 500)."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.faults.embedded import gunicorn

REQUESTS = 12


def _deploy_all_at_once(url: str, token: str) -> list[tuple[int, str]]:
    barrier = threading.Barrier(REQUESTS)

    def deploy(_: int) -> tuple[int, str]:
        session = requests.Session()
        session.get(f"{url}/healthz", timeout=30)  # connected before the barrier, so the posts leave together
        barrier.wait()
        response = session.post(
            f"{url}/api/v1/deployments/",
            json={"model": "credit-default", "version": "2", "environment": "dev"},
            headers={"Authorization": f"Token {token}"},
            timeout=60,
        )
        return response.status_code, response.text[:300]

    with ThreadPoolExecutor(REQUESTS) as pool:
        return list(pool.map(deploy, range(REQUESTS)))


def test_twelve_simultaneous_deploys_on_sqlite_answer_202_or_409(registry, tmp_path):
    with gunicorn(tmp_path, registry) as server:
        answers = _deploy_all_at_once(server.url, server.token)
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) <= {202, 409}, answers
    assert statuses.count(202) == 1, answers
    with sqlite3.connect(tmp_path / "controlplane.sqlite3") as db:
        assert db.execute("select count(*) from deployments_revision").fetchone()[0] == 1
        assert (
            db.execute("select count(*) from accounts_auditevent where action='deployment.deploy'").fetchone()[0] == 1
        )
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
