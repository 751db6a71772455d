"""Health/readiness, /metrics, /version, telemetry lines, micro-batching, workers, graceful shutdown."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import orjson
import pytest
import requests
from scoring.config import usable_cpus

from .helpers import REPO_ROOT, ServerProcess, metric_value, wait_for
from .models import credit_rows

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json"}
RECORDS = orjson.loads(
    orjson.dumps(credit_rows(40, seed=9).to_dict(orient="records"), option=orjson.OPT_SERIALIZE_NUMPY)
)


def telemetry_schema() -> dict:
    text = (REPO_ROOT / "docs" / "telemetry.md").read_text()
    block = re.search(r"<!-- telemetry-schema -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/telemetry.md lost its JSON Schema block"
    return json.loads(block.group(1))


def read_lines(path, request_id: str | None = None, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        if request_id is None or any(line["request_id"] == request_id for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# ---------------------------------------------------------------- health and readiness
def test_live_answers_while_the_model_loads_and_ready_waits_for_warm_up(trouble_model_dir, log_dir):
    server = ServerProcess(trouble_model_dir, log_dir, env={"TROUBLE_LOAD_DELAY_S": "4"})
    try:
        wait_for(server.url + "/health/live", timeout=30, proc=server.proc)
        ready = requests.get(server.url + "/health/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "loading"}
        scoring = requests.post(server.url + "/predict", data=b'[{"x": 1.0, "tag": "a"}]', headers=JSON)
        assert scoring.status_code == 503 and scoring.headers["retry-after"] == "1"
        assert "loading" in scoring.json()["message"]
        server.wait_ready(timeout=60)
        assert requests.get(server.url + "/health/ready").json() == {"status": "ready"}
        assert "warm-up scored" in server.stderr()
    finally:
        server.stop()


def test_a_model_that_cannot_load_ends_the_process_with_code_3(tmp_path, log_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: no.such.module\n")
    server = ServerProcess(broken, log_dir)
    assert server.proc.wait(timeout=60) == 3
    server.stop()
    assert "failed to load" in server.stderr()


# ---------------------------------------------------------------- metrics and version
def test_metrics_count_requests_errors_latency_and_batches(ours):
    before = requests.get(ours.url + "/metrics").text
    assert requests.post(ours.url + "/predict", data=orjson.dumps(RECORDS[:3]), headers=JSON).status_code == 200
    assert requests.post(ours.url + "/predict", data=b"[", headers=JSON).status_code == 400
    after = requests.get(ours.url + "/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    text = after.text

    def delta(name, labels=""):
        try:
            old = metric_value(before, name, labels)
        except KeyError:
            old = 0.0
        return metric_value(text, name, labels) - old

    assert delta("scoring_requests_total", 'route="/predict",status="200"') == 1
    assert delta("scoring_requests_total", 'route="/predict",status="400"') == 1
    assert delta("scoring_request_errors_total", 'kind="client",route="/predict"') == 1
    assert delta("scoring_request_duration_seconds_count", 'route="/predict"') == 2
    assert delta("scoring_rows_total") == 3
    assert delta("scoring_batch_rows_count") >= 1
    assert metric_value(text, "scoring_model_ready") == 1


def test_version_reports_the_environment(ours):
    body = requests.get(ours.url + "/version").json()
    assert body["deployment"] == "credit-default-dev"
    assert body["model_name"] == "credit-default"
    assert body["model_version"] == "7"
    assert body["revision"] == "rev-42"
    assert body["image_digest"] == "sha256:" + "ab" * 32
    assert body["mlflow_version"] and "sklearn" in body["flavors"]


# ---------------------------------------------------------------- telemetry
def test_telemetry_lines_match_the_documented_schema(ours):
    schema = telemetry_schema()
    ok = requests.post(
        ours.url + "/predict", data=orjson.dumps(RECORDS[:2]), headers={**JSON, "X-Request-ID": "tel-ok"}
    )
    bad = requests.post(ours.url + "/predict", data=b"{", headers={**JSON, "X-Request-ID": "tel-bad"})
    assert (ok.status_code, bad.status_code) == (200, 400)
    lines = read_lines(ours.telemetry_path, "tel-bad")
    for line in lines:
        jsonschema.validate(line, schema)
    by_id = {line["request_id"]: line for line in lines}
    good = by_id["tel-ok"]
    assert good["status"] == 200 and good["rows"] == 2 and good["route"] == "/predict"
    assert good["model"] == "credit-default" and good["model_version"] == "7" and good["revision"] == "rev-42"
    assert good["deployment"] == "credit-default-dev"
    assert good["sampled"] is True  # sample rate 1 in this fixture
    assert good["inputs"] == RECORDS[:2]
    assert good["outputs"] == ok.json()["predictions"]
    failed = by_id["tel-bad"]
    assert failed["status"] == 400 and "Malformed JSON" in failed["error"] and failed["rows"] == 0


def test_sampling_rate_zero_keeps_lines_but_drops_rows(trouble):
    response = requests.post(
        trouble.url + "/predict", data=b'[{"x": 1.0, "tag": "a"}]', headers={**JSON, "X-Request-ID": "nosample"}
    )
    assert response.status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in trouble.stdout_lines()]  # stdout: nothing but telemetry
        mine = [line for line in lines if line["request_id"] == "nosample"]
        if mine:
            break
        time.sleep(0.05)
    assert mine and mine[0]["sampled"] is False and "inputs" not in mine[0]
    for line in lines:
        jsonschema.validate(line, telemetry_schema())


# ---------------------------------------------------------------- micro-batching
def _batch_stats(url):
    text = requests.get(url + "/metrics").text
    return (
        metric_value(text, "scoring_batch_requests_count"),
        metric_value(text, "scoring_batch_requests_sum"),
        metric_value(text, "scoring_batch_requests_bucket", 'le="4.0"'),
    )


def _raw_request(path: str, rows: list[dict]) -> bytes:
    body = orjson.dumps(rows)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _post_raw(sock: socket.socket, path: str, rows: list[dict]) -> None:
    sock.sendall(_raw_request(path, rows))


def _read_pipelined(replies) -> tuple[int, dict]:
    """One answer from a connection's reader (``socket.makefile``), leaving the next ones buffered there."""
    status = int(replies.readline().split()[1])
    length = 0
    while (line := replies.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, json.loads(replies.read(length))


def _read_raw(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_concurrent_requests_are_merged_into_one_predict_call(trouble):
    count0, sum0, small0 = _batch_stats(trouble.url)
    # Twelve keep-alive connections, already open; a slow request holds the model while all twelve send.
    socks = [socket.create_connection(("127.0.0.1", trouble.port), timeout=30) for _ in range(13)]
    try:
        time.sleep(0.2)  # let the server accept them all
        _post_raw(socks[0], "/predict", [{"x": 0.5, "tag": "slow"}])
        time.sleep(0.15)
        for i, sock in enumerate(socks[1:], start=1):
            _post_raw(sock, "/predict", [{"x": float(i), "tag": "a"}])
        assert _read_raw(socks[0]) == (200, {"predictions": [1.0]})
        answers = [_read_raw(sock) for sock in socks[1:]]
    finally:
        for sock in socks:
            sock.close()
    assert answers == [(200, {"predictions": [2.0 * i]}) for i in range(1, 13)]
    count1, sum1, small1 = _batch_stats(trouble.url)
    assert sum1 - sum0 == 13  # requests
    assert count1 - count0 <= 3  # predict calls: the slow one, then the twelve merged (at most split once)
    assert (count1 - count0) - (small1 - small0) >= 1  # at least one call merged more than 4 requests


def test_credit_model_merges_concurrent_requests(ours):
    """Requests that queue while the model is busy share one predict call, and each gets its own rows' answer.
    Eight connections pipeline forty one-row requests each, so requests are waiting whatever the runtime's speed
    (a compiled model's call takes microseconds: requests sent one by one from threads rarely overlap)."""
    alone = [
        requests.post(ours.url + "/predict", data=orjson.dumps(RECORDS[i : i + 1]), headers=JSON).json()
        for i in range(40)
    ]
    count0, sum0, _ = _batch_stats(ours.url)
    socks = [socket.create_connection(("127.0.0.1", ours.port), timeout=30) for _ in range(8)]
    try:
        for sock in socks:
            sock.sendall(b"".join(_raw_request("/predict", RECORDS[i : i + 1]) for i in range(40)))
        answers = []
        for sock in socks:
            replies = sock.makefile("rb")
            answers.append([_read_pipelined(replies) for _ in range(40)])
    finally:
        for sock in socks:
            sock.close()
    assert answers == [[(200, answer) for answer in alone]] * 8
    count1, sum1, _ = _batch_stats(ours.url)
    assert sum1 - sum0 == 320
    assert (sum1 - sum0) / (count1 - count0) > 1.5, "concurrent requests were not merged"


# ---------------------------------------------------------------- shutdown and workers
def test_sigterm_finishes_in_flight_requests_then_exits_0(trouble_model_dir, log_dir):
    server = ServerProcess(trouble_model_dir, log_dir, env={"SCORING_SHUTDOWN_DELAY_S": "1"}).wait_ready()
    results = {}

    def slow():
        body = orjson.dumps([{"x": 1.5, "tag": "slow"}])
        results["slow"] = requests.post(server.url + "/predict", data=body, headers=JSON, timeout=30)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.4)  # the slow request is in the model now
    server.terminate()
    thread.join(timeout=30)
    assert results["slow"].status_code == 200
    assert results["slow"].json() == {"predictions": [3.0]}
    # During the shutdown delay the server still answers, but says it is not ready.
    ready = requests.get(server.url + "/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"status": "draining"}
    assert server.proc.wait(timeout=30) == 0
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/health/live", timeout=2)


def test_several_workers_share_the_port_and_aggregate_metrics(model_dir, log_dir):
    server = ServerProcess(model_dir, log_dir, workers=2, env={"SCORING_TELEMETRY_SAMPLE_RATE": "0.5"}).wait_ready()
    try:
        # Each new connection may land on either worker: wait until both are ready.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(requests.get(server.url + "/health/ready").status_code == 200 for _ in range(10)):
                break
            time.sleep(0.2)

        def call(i):
            return requests.post(server.url + "/predict", data=orjson.dumps(RECORDS[i % 40 : i % 40 + 1]), headers=JSON)

        with ThreadPoolExecutor(8) as pool:
            statuses = [r.status_code for r in pool.map(call, range(200))]
        assert statuses == [200] * 200
        text = requests.get(server.url + "/metrics").text
        assert metric_value(text, "scoring_requests_total", 'route="/predict",status="200"') == 200
        pids = {line.split("[")[1].split("]")[0] for line in server.stderr().splitlines() if "model ready" in line}
        assert len(pids) == 2
        # Each worker's compiled model gets its share of the CPUs, not all of them.
        runtimes = [requests.get(server.url + "/version").json()["runtime"] for _ in range(10)]
        assert {(r["active"], r["threads"]) for r in runtimes} == {("onnxruntime", max(1, usable_cpus() // 2))}
    finally:
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.stdout_lines()]
    assert len(lines) == 200
    sampled = sum(line["sampled"] for line in lines)
    assert 50 <= sampled <= 150  # rate 0.5


def test_head_requests_get_headers_only(ours):
    response = requests.head(ours.url + "/health/ready")
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0
    # The connection stays usable: the next answer is not mistaken for a body.
    session = requests.Session()
    assert session.head(ours.url + "/version").status_code == 200
    assert session.get(ours.url + "/health/live").json() == {"status": "alive"}


# ---------------------------------------------------------------- settings
@pytest.fixture(scope="module")
def tuned(trouble_model_dir, log_dir):
    server = ServerProcess(
        trouble_model_dir,
        log_dir,
        env={
            "SCORING_MAX_BATCH_WAIT_MS": "400",
            "SCORING_UNKNOWN_COLUMNS": "ignore",
            "SCORING_MAX_BATCH_ROWS": "3",
            "SCORING_BATCHING": "row-aligned",
        },
    )
    yield server.wait_ready()
    server.stop()


def test_batch_wait_merges_requests_that_arrive_apart(tuned):
    socks = [socket.create_connection(("127.0.0.1", tuned.port), timeout=30) for _ in range(2)]
    try:
        for sock in socks:  # both clients have scored recently: the server expects more from each
            _post_raw(sock, "/predict", [{"x": 0.0, "tag": "a"}])
            assert _read_raw(sock) == (200, {"predictions": [0.0]})
        count0, sum0, _ = _batch_stats(tuned.url)
        _post_raw(socks[0], "/predict", [{"x": 1.0, "tag": "a"}])
        time.sleep(0.03)  # well inside the 400 ms wait
        _post_raw(socks[1], "/predict", [{"x": 2.0, "tag": "a"}])
        answers = [_read_raw(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert answers == [(200, {"predictions": [2.0]}), (200, {"predictions": [4.0]})]
    count1, sum1, _ = _batch_stats(tuned.url)
    assert (count1 - count0, sum1 - sum0) == (1, 2)


def test_max_batch_rows_bounds_a_batch_and_a_full_batch_does_not_wait(tuned):
    count0, _, _ = _batch_stats(tuned.url)
    started = time.monotonic()
    body = [{"x": float(i), "tag": "a"} for i in range(3)]
    response = requests.post(tuned.url + "/predict", data=orjson.dumps(body), headers=JSON)
    assert response.json() == {"predictions": [0.0, 2.0, 4.0]}
    assert time.monotonic() - started < 0.15  # 3 rows = the maximum: no waiting for more
    text = requests.get(tuned.url + "/metrics").text
    assert metric_value(text, "scoring_batch_requests_count") - count0 == 1
    assert metric_value(text, "scoring_batch_rows_bucket", 'le="4.0"') == metric_value(
        text, "scoring_batch_rows_count"
    )  # never more than 3 rows in a call


def test_unknown_columns_can_be_ignored_like_mlflow(tuned):
    response = requests.post(tuned.url + "/predict", data=b'[{"x": 1.5, "tag": "a", "extra": 1}]', headers=JSON)
    assert response.status_code == 200 and response.json() == {"predictions": [3.0]}


def test_a_bad_setting_stops_the_server_naming_the_variable(model_dir, log_dir):
    server = ServerProcess(model_dir, log_dir, env={"SCORING_MAX_BATCH_ROWS": "lots"})
    assert server.proc.wait(timeout=30) == 2
    server.stop()
    assert "SCORING_MAX_BATCH_ROWS" in server.stderr()
