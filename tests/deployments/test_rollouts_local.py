"""Progressive delivery end to end on the embedded default: real Celery workers on real Redis and PostgreSQL,
real scoring processes behind the deployment's one stable endpoint, a client sending steady traffic to it.

A good version goes 20 -> 50 -> 100 % and becomes live with no failed request; a version that fails under
traffic is rolled back by the analysis, which names the failing check; a shadow candidate's answers never reach a
client; a worker killed mid-canary is replaced and the rollout goes on from where it was."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import requests

from apps.deployments import pipeline, tasks
from apps.deployments.models import AnalysisCheck, Deployment, Revision
from tests.registries import register_pyfunc_version
from tests.workers import running_worker, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1].parent / "shared" / "data" / "credit-default-sample-request.json"
FINAL = {"live", "failed", "rolled_back"}
# Short intervals and few requests: the flow, not the statistics, is under test here.
QUICK = {"step_seconds": 3, "min_requests": 5, "max_p99_ms": 5000, "max_drift": None, "min_agreement": None}


@pytest.fixture
def rollout_env(worker_env) -> dict[str, str]:
    return {**worker_env, "ROLLOUT_TICK_SECONDS": "0.2"}


class SteadyClient:
    """Posts the sample request to one URL, back to back, from a thread; records every answer."""

    def __init__(self, url: str, *, credit_limit: int | None = None) -> None:
        self.url = f"{url.rstrip('/')}/invocations"
        self.body = json.loads(SAMPLE.read_text())
        if credit_limit is not None:  # traffic unlike the input example
            self.body = [{**row, "credit_limit": credit_limit} for row in self.body]
        self.statuses: Counter = Counter()
        self.revisions: Counter = Counter()
        self.failures: list[str] = []
        self.first_answer: dict[str, float] = {}  # revision -> wall-clock time of its first answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        session.trust_env = False
        while not self._stop.is_set():
            try:
                response = session.post(self.url, json={"dataframe_records": self.body}, timeout=10)
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
                continue
            self.statuses[response.status_code] += 1
            revision = response.headers.get("x-modelplane-revision", "?")
            self.revisions[revision] += 1
            self.first_answer.setdefault(revision, time.time())
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} from {response.headers.get('x-modelplane-revision')}")
            self._stop.wait(0.01)

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _deploy(api, version: str, strategy: dict | None = None) -> dict:
    body = {"model": "credit-default", "version": version, "environment": "dev"}
    if strategy is not None:
        body["strategy"] = strategy
    response = api.post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def _finished(api, revision: dict, log: Path, timeout: float = 240) -> dict:
    def final():
        body = api.get(revision["url"]).json()
        return body if body["status"] in FINAL else None

    return wait_for(final, timeout=timeout, what=f"{revision['revision']} to finish", log=log)


def _weights_seen(revision_id: int, until: threading.Event, seen: list[int]) -> None:
    from django.db import connection

    try:
        while not until.is_set():
            weight = Revision.objects.values_list("canary_weight", flat=True).get(pk=revision_id)
            if not seen or seen[-1] != weight:
                seen.append(weight)
            until.wait(0.1)
    finally:
        connection.close()


def _register_failing_version(registry) -> str:
    sys.path.insert(0, str(HERE))
    try:
        from rollout_pymodels import FailsUnderTraffic
    finally:
        sys.path.remove(str(HERE))
    return register_pyfunc_version(
        registry,
        FailsUnderTraffic(),
        model_name="credit-default",
        input_example=pd.DataFrame(json.loads(SAMPLE.read_text())),
        code_paths=[str(HERE / "rollout_pymodels.py")],
    )


def test_a_good_canary_goes_20_50_100_behind_one_url_with_no_failed_request(
    lead_api, environments, registry, rollout_env, teardown_local, tmp_path
):
    log = tmp_path / "worker.log"
    with running_worker(log, env=rollout_env):
        first = _finished(lead_api, _deploy(lead_api, "1"), log)
        assert first["status"] == "live", first
        url = Deployment.objects.get().endpoint_url
        with SteadyClient(url) as client:
            queued = _deploy(lead_api, "2", {"type": "canary", "steps": [20, 50], **QUICK})
            seen: list[int] = []
            done = threading.Event()
            watcher = threading.Thread(target=_weights_seen, args=(queued["id"], done, seen), daemon=True)
            watcher.start()
            second = _finished(lead_api, queued, log)
            done.set()
            watcher.join(timeout=5)
        assert second["status"] == "live", second
    assert [w for w in seen if w] == [20, 50, 100], seen
    assert second["canary_weight"] == 100 and second["strategy"]["steps"] == [20, 50]
    assert {c["step"] for c in second["analysis"]} == {0, 1}
    assert not [c for c in second["analysis"] if c["verdict"] == "fail"], second["analysis"]
    passed = {(c["step"], c["metric"]) for c in second["analysis"] if c["verdict"] == "pass" and c["subject"] == "r2"}
    assert {(0, "requests"), (0, "error_rate"), (1, "requests"), (1, "error_rate")} <= passed, second["analysis"]
    assert client.failures == [] and client.statuses[200] > 0
    assert client.revisions["r1"] > 0 and client.revisions["r2"] > 0, client.revisions
    deployment = Deployment.objects.get()
    assert deployment.endpoint_url == url, "the one stable URL survives the revision"
    assert (
        requests.post(
            f"{url}/invocations", json={"dataframe_records": json.loads(SAMPLE.read_text())}, timeout=10
        ).headers["x-modelplane-revision"]
        == "r2"
    )


def test_a_version_failing_under_traffic_is_rolled_back_by_the_analysis(
    lead_api, environments, registry, rollout_env, teardown_local, tmp_path
):
    log = tmp_path / "worker.log"
    failing = _register_failing_version(registry)
    with running_worker(log, env=rollout_env):
        assert _finished(lead_api, _deploy(lead_api, "1"), log)["status"] == "live"
        url = Deployment.objects.get().endpoint_url
        with SteadyClient(url, credit_limit=25000) as client:
            bad = _finished(
                lead_api,
                _deploy(lead_api, failing, {"type": "canary", "steps": [50], "max_failed_checks": 0, **QUICK}),
                log,
            )
            after = sum(client.statuses.values())
            wait_for(lambda: sum(client.statuses.values()) > after + 20, timeout=30, what="traffic after the rollback")
    assert bad["status"] == "rolled_back", bad
    assert "error rate" in bad["error"] and "rolled back to r1" in bad["error"], bad["error"]
    failed = [c for c in bad["analysis"] if c["verdict"] == "fail"]
    assert [c["metric"] for c in failed] == ["error_rate"] and failed[0]["subject"] == "r2"
    assert failed[0]["value"] > failed[0]["threshold"]
    # Only the candidate's share failed; the old version answered throughout, and alone after the rollback.
    assert {f.split(" from ")[-1] for f in client.failures} == {"r2"}, client.failures
    assert client.revisions["r1"] > 0
    response = requests.post(
        f"{url}/invocations", json={"dataframe_records": json.loads(SAMPLE.read_text())}, timeout=10
    )
    assert response.status_code == 200 and response.headers["x-modelplane-revision"] == "r1"
    assert Revision.objects.get(pk=bad["id"]).canary_weight == 0


def test_shadow_answers_never_reach_a_client(lead_api, environments, registry, rollout_env, teardown_local, tmp_path):
    log = tmp_path / "worker.log"
    failing = _register_failing_version(registry)
    with running_worker(log, env=rollout_env):
        assert _finished(lead_api, _deploy(lead_api, "1"), log)["status"] == "live"
        url = Deployment.objects.get().endpoint_url
        with SteadyClient(url, credit_limit=25000) as client:
            shadow = _finished(
                lead_api,
                _deploy(lead_api, failing, {"type": "shadow", "intervals": 1, "max_failed_checks": 0, **QUICK}),
                log,
            )
    assert shadow["status"] == "rolled_back", shadow
    assert any(c["metric"] == "error_rate" and c["verdict"] == "fail" for c in shadow["analysis"])
    assert client.failures == [], "the shadow failed every mirrored request, and no client saw one"
    assert set(client.revisions) == {"r1"}, client.revisions


def test_a_worker_killed_mid_canary_is_resumed_where_it_was(
    lead_api, environments, registry, rollout_env, teardown_local, tmp_path
):
    log = tmp_path / "worker.log"
    with running_worker(log, env=rollout_env):
        assert _finished(lead_api, _deploy(lead_api, "1"), log)["status"] == "live"
    url = Deployment.objects.get().endpoint_url
    with SteadyClient(url) as client:
        worker = start_worker(log, env=rollout_env)
        try:
            queued = _deploy(lead_api, "2", {"type": "canary", "steps": [20, 50], **{**QUICK, "step_seconds": 6}})
            wait_for(
                lambda: Revision.objects.filter(pk=queued["id"], canary_weight=50).exists(),
                timeout=180,
                what="the canary to reach 50%",
                log=log,
            )
        finally:
            stop_worker(worker, kill=True)
        checks_before = AnalysisCheck.objects.filter(revision_id=queued["id"]).count()
        assert client.revisions["r2"] > 0
        with running_worker(log, env=rollout_env):
            wait_for(lambda: tasks.requeue_stuck() > 0, timeout=30, what="the lease to lapse and a re-queue", log=log)
            resumed = _finished(lead_api, queued, log)
    assert resumed["status"] == "live" and resumed["attempts"] == 2, resumed
    steps = {c["step"] for c in resumed["analysis"]}
    assert steps == {0, 1}, "interval 1 was judged once, before the kill; interval 2 after"
    assert AnalysisCheck.objects.filter(revision_id=queued["id"], step=0).count() <= checks_before
    traffic_log = next(s["log"] for s in resumed["steps"] if s["name"] == "traffic")
    assert "resuming (attempt 2)" in traffic_log
    assert client.failures == []
    target = pipeline.target_for(Deployment.objects.get(), Revision.objects.get(pk=queued["id"]).config)
    assert target.traffic(pipeline.serving_spec(Revision.objects.get(pk=queued["id"]))) == {"r2": 100}


def test_blue_green_switches_at_once_and_keeps_the_old_revision_warm_for_a_while(
    lead_api, environments, registry, rollout_env, teardown_local, tmp_path
):
    from apps.deployments.targets.local_process import _alive

    log = tmp_path / "worker.log"
    with running_worker(log, env=rollout_env):
        assert _finished(lead_api, _deploy(lead_api, "1"), log)["status"] == "live"
        deployment = Deployment.objects.get()
        url = deployment.endpoint_url
        old = json.loads((Path(rollout_env["DEPLOY_LOCAL_DIR"]) / "dev" / deployment.name / "r1.json").read_text())
        with SteadyClient(url) as client:
            green = _deploy(lead_api, "2", {"type": "blue_green", "intervals": 1, "keep_warm_seconds": 8, **QUICK})
            live = _finished(lead_api, green, log)
            assert live["status"] == "live", live
            assert _alive(old["pid"], old["model_dir"]), "the old revision is kept warm after the switch"
            switched = sum(client.statuses.values())
            wait_for(lambda: client.revisions["r2"] > 10, timeout=30, what="requests on the new revision")
            wait_for(
                lambda: not _alive(old["pid"], old["model_dir"]), timeout=60, what="the warm revision to stop", log=log
            )
    requests_ = [c for c in live["analysis"] if c["metric"] == "requests" and c["subject"] == "r2"]
    assert requests_ and requests_[-1]["verdict"] == "pass"
    passed = AnalysisCheck.objects.filter(revision_id=green["id"], verdict="pass").earliest("checked_at").checked_at
    assert client.first_answer["r2"] > passed.timestamp(), "no client request reached r2 before its analysis passed"
    assert client.failures == [] and sum(client.statuses.values()) > switched
