"""simulate_traffic sends reference rows (shifted on request) to a loopback endpoint, bounded in count."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.monitoring.traffic import shift_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "body": body, "id": self.headers.get("X-Request-ID")})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_sends_shifted_reference_rows(deployment, registry, endpoint):
    url, received = endpoint
    deployment.endpoint_url = url
    deployment.save()
    out = io.StringIO()
    call_command("simulate_traffic", deployment.pk, rate=40, seconds=0.25, drift="age", strength=50, stdout=out)
    assert len(received) == 10
    assert all(r["path"] == "/invocations" for r in received)
    rows = [row for r in received for row in r["body"]["dataframe_records"]]
    assert all(row["age"] > 150 for row in rows)  # 50 standard deviations up
    assert "Sent 10 requests" in out.getvalue() and "200" in out.getvalue()


def test_refuses_non_loopback_endpoints_and_unknown_features(deployment, registry):
    deployment.endpoint_url = "http://10.1.2.3:8080"
    deployment.save()
    with pytest.raises(CommandError, match="loopback"):
        call_command("simulate_traffic", deployment.pk, seconds=0.1)
    with pytest.raises(Exception, match="Unknown feature"):
        shift_frame(pd.DataFrame({"a": [1, 2]}), ["nope"])


def test_categorical_shift_uses_the_rarest_value():
    frame = pd.DataFrame({"c": ["x", "x", "y", "z", "z", "z"], "n": [1, 2, 3, 4, 5, 6]})
    shifted = shift_frame(frame, ["c", "n"], strength=1.0)
    assert set(shifted["c"]) == {"y"}
    assert (shifted["n"] > frame["n"]).all()


def test_a_bad_share_of_requests_lack_a_column_and_ids_carry_the_label(endpoint):
    from apps.monitoring.traffic import send

    url, received = endpoint
    frame = pd.DataFrame({"age": [30, 40], "sex": ["1", "2"]})
    report = send(endpoint=url, frame=frame, rate=50, seconds=0.1, bad_share=1.0, label="demo-traffic")
    assert report.sent == 5 and len(received) == 5
    assert all(list(row) == ["sex"] for r in received for row in r["body"]["dataframe_records"])
    assert all(r["id"].startswith("demo-traffic-0-") for r in received)


@pytest.fixture
def slow_endpoint():
    """Answers after 100 ms and counts how many requests it had in flight at once."""
    state = {"in_flight": 0, "most": 0, "received": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                state["in_flight"] += 1
                state["most"] = max(state["most"], state["in_flight"])
            threading.Event().wait(0.1)
            with lock:
                state["in_flight"] -= 1
                state["received"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def test_requests_go_out_concurrently_to_keep_the_rate(deployment, registry, slow_endpoint):
    """One sender waiting 100 ms per answer can never exceed 10 req/s; at 60 req/s several are in flight."""
    url, state = slow_endpoint
    deployment.endpoint_url = url
    deployment.save()
    out = io.StringIO()
    call_command("simulate_traffic", deployment.pk, rate=60, seconds=1, stdout=out)
    assert state["received"] == 60 and state["most"] > 1
    assert "from 6 concurrent sender(s)" in out.getvalue() and "Sent 60 requests" in out.getvalue()


def test_a_rate_out_of_reach_is_reported_with_the_reason(deployment, registry, slow_endpoint):
    """One sender and 100 ms answers: at most 10 of the 50 req/s asked; the command says so and what to do."""
    url, state = slow_endpoint
    deployment.endpoint_url = url
    deployment.save()
    out = io.StringIO()
    call_command("simulate_traffic", deployment.pk, rate=50, seconds=0.3, concurrency=1, stdout=out)
    assert state["most"] == 1 and state["received"] == 15
    text = out.getvalue()
    assert "Below the asked rate: reached" in text and "of 50 req/s: 1 concurrent sender(s)" in text
    assert "try --concurrency" in text


def test_a_saturated_server_is_named_as_the_limit():
    from apps.monitoring.traffic import TrafficReport

    queued = TrafficReport(sent=600, seconds=15, rate=150, concurrency=15, latencies_ms=[120.0] * 20 + [330.0] * 80)
    assert "the scoring server is the limit; its answers slowed from 120 ms to a median 330 ms" in queued.shortfall()
    few = TrafficReport(sent=112, seconds=15, rate=150, concurrency=1, latencies_ms=[135.0] * 50 + [141.0] * 62)
    assert few.shortfall().endswith("sustain about 7 req/s; try --concurrency 27")
    enough = TrafficReport(sent=1400, seconds=10, rate=150, concurrency=15, latencies_ms=[20.0] * 1400)
    assert enough.shortfall() == ""
