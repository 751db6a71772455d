"""The local target's stable endpoint: real scoring processes of two revisions (answering ``x * 1`` and ``x * 10``)
behind the deployment's router; its URL stays the same across revisions, router deaths and new target objects (a
restarted control plane), and delete stops all of it."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest
import requests

from apps.deployments import pipeline, services, tasks
from apps.deployments.backends import PermanentBackendError
from apps.deployments.models import Deployment
from apps.deployments.rollouts.strategy import STRATEGY_TYPES
from apps.deployments.targets.base import CANDIDATE, ServingSpec, TrafficSplit, get_target
from apps.deployments.targets.local_process import _alive
from tests.scoring_image.models import save_scale_model
from tests.workers import wait_for

ONE_ROW = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
WHO = {1.0: "r1", 10.0: "r2"}


@pytest.fixture(scope="module")
def scale_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale-models")
    return save_scale_model(base / "times-1", 1.0), save_scale_model(base / "times-10", 10.0)


@pytest.fixture
def target(tmp_path):
    target = get_target("local", base_dir=tmp_path / "local-target", telemetry_dir=tmp_path / "telemetry")
    yield target
    for state in (tmp_path / "local-target").glob("*/*/*.json"):  # whatever a failed test left running
        try:
            os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
        except (ProcessLookupError, ValueError, KeyError):
            pass


def _spec(model_dir, revision: str, placement: str = "primary") -> ServingSpec:
    return ServingSpec(
        deployment="scale",
        namespace="",
        environment="dev",
        revision=revision,
        model_name="scale",
        model_version=revision[1:],
        model_uri=f"models:/scale/{revision[1:]}",
        model_dir=str(model_dir),
        placement=placement,
    )


@pytest.fixture
def revisions(target, scale_models):
    """r1 (x * 1) serving as the primary and r2 (x * 10) as a candidate, both ready."""
    specs = _spec(scale_models[0], "r1"), _spec(scale_models[1], "r2", CANDIDATE)
    for spec in specs:
        target.apply(spec, lambda line: None)
    for spec in specs:
        assert target.wait_ready(spec, lambda line: None, timeout_seconds=120).ok
    return specs


def _answers(url: str, count: int) -> list[str]:
    session = requests.Session()
    return [
        WHO[session.post(f"{url}/invocations", json=ONE_ROW, timeout=30).json()["predictions"][0]] for _ in range(count)
    ]


def _router(target, spec) -> dict:
    return json.loads((target.base_dir / "dev" / "scale" / "router.json").read_text())


def test_every_strategy_is_offered(target):
    assert [target.traffic_refusal(kind) for kind in STRATEGY_TYPES] == [None] * len(STRATEGY_TYPES)


def test_set_traffic_is_what_traffic_reports_and_what_clients_get(target, revisions):
    stable, candidate = revisions
    lines: list[str] = []
    assert target.traffic(stable) == {}, "no router before any traffic was set"
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=20), lines.append)
    assert target.traffic(stable) == {"r1": 80, "r2": 20} == target.traffic(candidate)
    assert "traffic of scale: r1 80%, r2 20%" in lines
    url = target.stable_url(stable)
    assert _answers(url, 100).count("r2") == 20

    pid = _router(target, stable)["pid"]
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=50), lines.append)
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, mirror_percent=50), lines.append)
    assert target.traffic(stable) == {"r1": 100, "r2": 0, "mirror": 50}
    assert _answers(url, 40) == ["r1"] * 40, "the shadow's answers reach no client"
    status = requests.get(f"{url}/-/router/status", timeout=10).json()
    assert status["mirror"]["sent"] == 20 and _router(target, stable)["pid"] == pid

    with pytest.raises(PermanentBackendError, match="r9 of scale was never started here"):
        target.set_traffic(TrafficSplit(stable=stable, candidate=_spec(candidate.model_dir, "r9")), lines.append)
    assert target.traffic(stable) == {"r1": 100, "r2": 0, "mirror": 50}, "a refused split changes nothing"


def test_the_stable_url_outlives_revisions_router_deaths_and_restarted_control_planes(target, revisions, tmp_path):
    stable, candidate = revisions
    url = target.stable_url(stable)
    assert _answers(url, 3) == ["r1"] * 3 and target.traffic(stable) == {"r1": 100}

    readiness = target.promote(candidate, lambda line: None, timeout_seconds=60)
    assert readiness.ok and readiness.endpoint_url == url
    assert target.traffic(candidate) == {"r2": 100} and _answers(url, 3) == ["r2"] * 3
    target.retire(stable, lambda line: None)
    assert not target.is_running(stable) and target.is_running(candidate)

    router = _router(target, candidate)
    os.kill(router["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(router["pid"], router["config"]), timeout=10, what="the router to die")
    assert target.is_running(candidate) is False, "a dead router is a deployment not serving"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health/ready", timeout=5)
    assert target.traffic(candidate) == {"r2": 100}, "while it is down: what it serves when it is back"
    target.apply(candidate, lambda line: None)  # what the reconcile does for a deployment not running
    assert target.is_running(candidate) and _router(target, candidate)["pid"] != router["pid"]
    assert target.stable_url(candidate) == url and _answers(url, 3) == ["r2"] * 3

    restarted = get_target("local", base_dir=tmp_path / "local-target", telemetry_dir=tmp_path / "telemetry")
    os.kill(_router(target, candidate)["pid"], signal.SIGKILL)
    restarted.set_traffic(TrafficSplit(stable=candidate), lambda line: None)
    assert restarted.stable_url(candidate) == url and _answers(url, 3) == ["r2"] * 3


def test_retiring_a_revision_still_weighted_routes_its_share_elsewhere_first(target, revisions):
    stable, candidate = revisions
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=50), lambda line: None)
    target.retire(candidate, lambda line: None)
    assert target.traffic(stable) == {"r1": 100}
    assert _answers(target.stable_url(stable), 10) == ["r1"] * 10


def test_delete_stops_the_router_and_every_revision_and_removes_their_files(target, revisions):
    stable, candidate = revisions
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=50), lambda line: None)
    url = target.stable_url(stable)
    pids = [_router(target, stable)["pid"], *(target._state(spec)["pid"] for spec in revisions)]
    lines: list[str] = []
    target.delete(stable, lines.append)
    assert not any(os.path.exists(f"/proc/{pid}") and _alive(pid, "scoring") for pid in pids)
    assert sorted(p.name for p in (target.base_dir / "dev" / "scale").iterdir() if p.suffix != ".log") == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/-/router/status", timeout=5)
    assert any("stopped the router" in line for line in lines)
    target.delete(stable, lines.append)  # deleting what is gone is fine


@pytest.mark.django_db
def test_the_reconcile_brings_a_dead_router_back_on_its_port(
    alice, environments, registry, local_dirs, teardown_local, django_capture_on_commit_callbacks
):
    revision = services.deployment_create(
        actor=alice, model_name="credit-default", model_version="2", environment="dev"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.revision_run(revision_id=revision.pk) == "live"
    deployment = Deployment.objects.select_related("environment", "live_revision").get()
    target = pipeline.target_for(deployment, deployment.live_revision.config)
    spec = pipeline.serving_spec(deployment.live_revision)
    url = target.stable_url(spec)
    state = json.loads((local_dirs / "local-target" / "dev" / spec.deployment / "router.json").read_text())
    assert requests.get(f"{url}/health/ready", timeout=10).status_code == 200

    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(state["pid"], state["config"]), timeout=10, what="the router to die")
    assert tasks.reconcile_local() == 1
    deployment.refresh_from_db()
    assert deployment.endpoint_url == url and requests.get(f"{url}/health/ready", timeout=10).status_code == 200
    assert tasks.reconcile_local() == 0


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_a_revision_restarted_on_another_port_keeps_its_share(target, revisions):
    stable, candidate = revisions
    target.set_traffic(TrafficSplit(stable=stable, candidate=candidate, weight=50), lambda line: None)
    state = target._state(stable)
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(state["pid"], state["model_dir"]), timeout=10, what="r1 to die")
    with socket.socket() as squatter:  # someone else took r1's port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the dead server's TIME_WAIT sockets
        # The killed server's threads may still hold its listening socket for a moment after the process shows dead.
        wait_for(lambda: _bound(squatter, state["port"]), timeout=10, what="r1's port to be free")
        squatter.listen()
        target.apply(stable, lambda line: None)
        assert target.wait_ready(stable, lambda line: None, timeout_seconds=120).ok
        port = target._state(stable)["port"]
        assert port != state["port"]
        status = requests.get(f"{target.stable_url(stable)}/-/router/status", timeout=10).json()
        assert status["config"]["backends"]["r1"] == f"http://127.0.0.1:{port}"
        assert sorted(_answers(target.stable_url(stable), 10)) == ["r1"] * 5 + ["r2"] * 5
