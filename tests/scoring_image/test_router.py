"""The stable endpoint's router (``python -m scoring route``) in front of real scoring servers on two models whose
answers differ (``x * 1`` and ``x * 10``): exact weights, mirrored answers that never reach a client, reloads and
a killed backend under steady traffic with no failed request, request ids and shadow telemetry."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest
import requests
from scoring.telemetry import sampled_by_id

from .helpers import RouterProcess, ServerProcess
from .models import save_scale_model

ONE_ROW = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
ANSWER = {1.0: "r1", 10.0: "r2"}  # r1 serves x * 1, r2 serves x * 10


@pytest.fixture(scope="module")
def scale_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale-models")
    return save_scale_model(base / "times-1", 1.0), save_scale_model(base / "times-10", 10.0)


def _start(model_dir, log_dir, revision: str, sample_rate: str = "0.5") -> ServerProcess:
    telemetry = log_dir / f"telemetry-{revision}-{time.monotonic_ns()}.jsonl"
    server = ServerProcess(
        model_dir,
        log_dir,
        compiled=False,
        env={
            "SCORING_TELEMETRY_PATH": str(telemetry),
            "SCORING_TELEMETRY_SAMPLE_RATE": sample_rate,
            "SCORING_REVISION": revision,
            "SCORING_DEPLOYMENT": "scale",
        },
    )
    server.telemetry_path = telemetry
    return server


@pytest.fixture(scope="module")
def pair(scale_models, log_dir):
    """Two revisions that stay up for the module: r1 answers x * 1, r2 answers x * 10."""
    servers = [_start(scale_models[0], log_dir, "r1"), _start(scale_models[1], log_dir, "r2")]
    yield [server.wait_ready() for server in servers]
    for server in servers:
        server.stop()


@pytest.fixture
def fresh_pair(scale_models, log_dir):
    """Two revisions a test may stop or kill."""
    servers = [_start(scale_models[0], log_dir, "r1", "0"), _start(scale_models[1], log_dir, "r2", "0")]
    yield [server.wait_ready() for server in servers]
    for server in servers:
        server.stop()


@pytest.fixture
def routers(log_dir):
    started: list[RouterProcess] = []

    def start(config: dict, *args: str) -> RouterProcess:
        started.append(RouterProcess(config, log_dir, args=args))
        return started[-1]

    yield start
    for router in started:
        assert router.stop() == 0, router.log_path.read_text()


def _config(pair, weights: dict[str, int], mirror: dict | None = None) -> dict:
    config = {"backends": {"r1": pair[0].url, "r2": pair[1].url}, "weights": weights}
    if mirror:
        config["mirror"] = mirror
    return config


def _who(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return ANSWER[response.json()["predictions"][0]]


def _telemetry(server: ServerProcess, prefix: str, count: int) -> dict[str, dict]:
    """The server's lines of the requests whose id starts with ``prefix``, once all ``count`` were written."""
    deadline = time.monotonic() + 20
    while True:
        lines = [json.loads(line) for line in server.telemetry_path.read_text().splitlines()]
        mine = {line["request_id"]: line for line in lines if line["request_id"].startswith(prefix)}
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


class Traffic:
    """Clients sending one-row requests back to back on keep-alive connections until stopped; every answer kept."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.answers: list[tuple[float, str]] = []  # (when the request was sent, which revision answered)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _client(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                response = session.post(self.url + "/invocations", json=ONE_ROW, timeout=30)
            except requests.RequestException as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                self.failures.append(f"{response.status_code}: {response.text[:200]}")
                continue
            self.answers.append((sent, ANSWER[response.json()["predictions"][0]]))

    def wait_for(self, more: int) -> None:
        """Until ``more`` further answers arrived (or failures: the test's assertions show them)."""
        target = len(self.answers) + more
        deadline = time.monotonic() + 60
        while len(self.answers) < target and time.monotonic() < deadline and len(self.failures) < 50:
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_weights_are_exact_over_every_hundred_requests(pair, routers):
    router = routers(_config(pair, {"r1": 80, "r2": 20}))
    session = requests.Session()
    answered = [_who(session.post(router.url + "/invocations", json=ONE_ROW)) for _ in range(200)]
    assert answered[:100].count("r2") == 20 and answered[100:].count("r2") == 20
    assert answered[:5].count("r2") == 1, "spread evenly, not 80 then 20"
    status = router.status()
    assert status["backends"]["r1"]["requests"] == 160 and status["backends"]["r2"]["requests"] == 40
    assert status["config"] == _config(pair, {"r1": 80, "r2": 20})

    router.configure(_config(pair, {"r1": 33, "r2": 67}))
    answered = [_who(session.post(router.url + "/invocations", json=ONE_ROW)) for _ in range(100)]
    assert answered.count("r2") == 67


def test_request_ids_reach_the_backend_and_come_back(pair, routers):
    router = routers(_config(pair, {"r1": 100}))
    response = requests.post(router.url + "/invocations", json=ONE_ROW, headers={"X-Request-ID": "mine-1"})
    assert response.headers["x-request-id"] == "mine-1" and response.headers["x-modelplane-revision"] == "r1"
    generated = requests.post(router.url + "/invocations", json=ONE_ROW).headers["x-request-id"]
    assert generated.startswith("rt")
    assert _telemetry(pair[0], "mine-1", 1)["mine-1"]["shadow"] is False
    assert generated in _telemetry(pair[0], generated, 1), "the backend saw the id the router made"


def test_mirrored_answers_never_reach_a_client_and_shadow_lines_sample_the_same_requests(pair, routers):
    router = routers(_config(pair, {"r1": 100, "r2": 0}, {"to": "r2", "percent": 100}))
    session = requests.Session()
    ids = [f"shadow-{i}" for i in range(80)]
    for rid in ids:
        response = session.post(router.url + "/invocations", json=ONE_ROW, headers={"X-Request-ID": rid})
        assert _who(response) == "r1" and response.headers["x-request-id"] == rid
    live, shadow = _telemetry(pair[0], "shadow-", 80), _telemetry(pair[1], "shadow-", 80)
    assert set(live) == set(shadow) == set(ids)
    assert not any(line["shadow"] for line in live.values()) and all(line["shadow"] for line in shadow.values())
    sampled = {rid for rid, line in live.items() if line["sampled"]}
    assert sampled == {rid for rid, line in shadow.items() if line["sampled"]}
    assert sampled == {rid for rid in ids if sampled_by_id(rid, 0.5)} and 0 < len(sampled) < 80
    assert all(shadow[rid]["outputs"] == [10 * live[rid]["outputs"][0]] for rid in sampled), "joined by request id"
    mirror = router.status()["mirror"]
    assert mirror["sent"] == 80 and mirror["dropped"] == 0 and router.status()["backends"]["r2"]["requests"] == 0

    router.configure(_config(pair, {"r1": 100, "r2": 0}, {"to": "r2", "percent": 25}))
    for i in range(40):
        assert _who(session.post(router.url + "/invocations", json=ONE_ROW, headers={"X-Request-ID": f"q-{i}"})) == "r1"
    assert set(_telemetry(pair[1], "q-", 10)) == {f"q-{i}" for i in (3, 7, 11, 15, 19, 23, 27, 31, 35, 39)}


def test_a_mirror_that_never_answers_delays_no_client_and_its_backlog_is_bounded(pair, routers):
    black_hole = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)
    config = {
        "backends": {"r1": pair[0].url, "hole": f"http://127.0.0.1:{black_hole.getsockname()[1]}"},
        "weights": {"r1": 100},
        "mirror": {"to": "hole", "percent": 100},
    }
    try:
        router = routers(config, "--mirror-backlog", "4")
        session = requests.Session()
        assert all(_who(session.post(router.url + "/invocations", json=ONE_ROW, timeout=30)) == "r1" for _ in range(20))
        mirror = router.status()["mirror"]
        assert (mirror["sent"], mirror["in_flight"], mirror["dropped"]) == (4, 4, 16)
    finally:
        black_hole.close()


def test_weights_change_and_the_old_revision_stops_under_traffic_with_no_failed_request(fresh_pair, routers):
    old, new = fresh_pair
    router = routers(_config(fresh_pair, {"r1": 100}))
    traffic = Traffic(router.url)
    try:
        traffic.wait_for(100)
        for weights in ({"r1": 80, "r2": 20}, {"r1": 50, "r2": 50}, {"r1": 10, "r2": 90}):
            router.configure(_config(fresh_pair, weights))
            traffic.wait_for(100)
        router.configure(_config(fresh_pair, {"r2": 100}), signal_it=False)  # the file's change alone is seen
        switched = time.monotonic()
        old.terminate()  # the retired revision drains and stops while clients keep sending
        assert old.proc.wait(timeout=30) == 0
        traffic.wait_for(200)
    finally:
        traffic.stop()
    assert traffic.failures == []
    assert {who for _, who in traffic.answers} == {"r1", "r2"}
    assert {who for at, who in traffic.answers if at > switched} == {"r2"}, "sent after the switch: the new one"
    assert router.status()["reloads"]["failed"] == 0


def test_a_backend_killed_mid_traffic_costs_no_request(fresh_pair, routers):
    doomed, survivor = fresh_pair
    router = routers(_config(fresh_pair, {"r1": 50, "r2": 50}))
    traffic = Traffic(router.url, clients=6)
    try:
        traffic.wait_for(200)
        os.kill(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait(timeout=10)
        killed = time.monotonic()
        traffic.wait_for(300)
    finally:
        traffic.stop()
    assert traffic.failures == []
    assert {who for at, who in traffic.answers if at > killed} == {"r2"}
    r1 = router.status()["backends"]["r1"]
    assert r1["failures"] >= 1 and r1["retried_elsewhere"] == r1["failures"]


def test_a_bad_configuration_is_refused_and_the_one_in_force_kept(pair, routers):
    router = routers(_config(pair, {"r1": 100}))
    digest = router.status()["digest"]
    router.config_path.write_text('{"backends": {"r1": "ftp://x"}, "weights": {"r1": 100}}')
    router.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while router.status()["reloads"]["failed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = router.status()
    assert (
        status["digest"] == digest and "backends.r1 must look like http://HOST:PORT" in status["reloads"]["last_error"]
    )
    assert _who(requests.post(router.url + "/invocations", json=ONE_ROW)) == "r1"


def test_sigterms_repeated_while_it_exits_do_not_kill_it(trouble, log_dir):
    """A supervisor (or a test) that sends SIGTERM again while the drained router is exiting must still see exit 0:
    once drained it ignores them, where the closed event loop would have restored their default action."""
    router = RouterProcess({"backends": {"t": trouble.url}, "weights": {"t": 100}}, log_dir)
    deadline = time.monotonic() + 30
    sent = 0
    while router.proc.poll() is None and time.monotonic() < deadline:
        router.proc.send_signal(signal.SIGTERM)
        sent += 1
        time.sleep(0.002)
    assert router.proc.wait(timeout=5) == 0 and sent > 1


def test_sigterm_drains_a_request_in_flight_then_refuses_new_connections(trouble, log_dir):
    router = RouterProcess({"backends": {"t": trouble.url}, "weights": {"t": 100}}, log_dir)
    slow = {"dataframe_split": {"columns": ["x", "tag"], "data": [[1.5, "slow"]]}}
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(requests.post(router.url + "/invocations", json=slow)))
    client.start()
    deadline = time.monotonic() + 10
    while router.status()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    router.proc.send_signal(signal.SIGTERM)
    client.join(timeout=30)
    assert answers and answers[0].status_code == 200 and answers[0].json()["predictions"] == [3.0]
    assert router.stop() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(router.url + "/-/router/status", timeout=5)
