"""Benchmark: what the stable endpoint's router (``python -m scoring route``) adds to a request.

    .venv/bin/python bench/scoring/router.py [--duration 8] [--warmup 2] [--json out.json]

Trains and compiles the credit-default model as ``bench.py`` does, starts our server on it (one worker) and a
router in front of it (weight 100 on that one backend), and drives each with the same closed loop of 1-row
``POST /invocations`` at c = 1, 8 and 32: direct, through the router, and through the router mirroring every
request to a second server on the same model (shadow at 100 %); and the same direct vs routed comparison on the
HTTP layer alone (``echo.py``), where the router's own cost is not hidden behind the model's. The machine is
shared, so the ways of reaching the server take turns, ``--rounds`` times per concurrency, and each figure is the
median of its rounds (a burst of someone else's load then hits one round of each, not all of one way).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from loadgen import run_load  # noqa: E402

from bench import REPO, compile_model, free_port, row, start_echo, start_ours, stop, train, wait_ready  # noqa: E402

CONCURRENCY = (1, 8, 32)


def start_router(config: dict, port: int, tmp: Path) -> subprocess.Popen:
    path = tmp / f"router-{port}.conf"
    path.write_text(json.dumps(config))
    env = dict(os.environ, PYTHONPATH=str(REPO / "scoring-image"))
    cmd = [sys.executable, "-m", "scoring", "route", str(path), "--port", str(port)]
    log = (tmp / f"router-{port}.log").open("wb")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def server_p50(telemetry: Path | None, since: int) -> tuple[int, float | None]:
    """Lines of the live server's telemetry so far, and the median ``latency_ms`` of those after ``since``: the
    server's own time (first byte read to answer written), so client p50 minus it is what the path adds."""
    if telemetry is None or not telemetry.exists():
        return since, None
    lines = telemetry.read_bytes().splitlines()
    latencies = [orjson.loads(line)["latency_ms"] for line in lines[since:]]
    return len(lines), statistics.median(latencies) if latencies else None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time the process used so far (0 when there is no process to ask)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    ports: dict[str, int], body: bytes, args, telemetry: Path | None = None, routers: dict[str, int] | None = None
) -> dict[str, dict[int, dict]]:
    """Per way of reaching the server and concurrency: the median over the rounds of req/s, p50, p99, the server's
    own p50 (from its telemetry), the client's p50 minus it, and the router's CPU time per request (``routers``:
    way -> router pid). CPU time does not depend on how busy the machine is; waiting for a core does."""
    out: dict[str, dict[int, dict]] = {name: {} for name in ports}
    seen = server_p50(telemetry, 0)[0]
    for c in CONCURRENCY:
        rounds: dict[str, list[dict]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                pid = (routers or {}).get(name)
                cpu = cpu_seconds(pid)
                result = run_load(port, body, concurrency=c, duration=args.duration, warmup=args.warmup)
                result.rows_per_request = 1  # type: ignore[attr-defined]
                result.server = None  # type: ignore[attr-defined]
                time.sleep(0.2)  # the server's last telemetry lines
                seen, own = server_p50(telemetry, seen)
                run = row(result)
                run["server_p50"] = own
                run["path_p50"] = run["p50"] - own if own is not None else None
                done = result.requests + result.errors
                run["router_cpu_us"] = (cpu_seconds(pid) - cpu) / done * 1e6 if pid and done else None
                rounds[name].append(run)
        for name, runs in rounds.items():
            medians = {}
            for key in ("req_s", "p50", "p99", "server_p50", "path_p50", "router_cpu_us"):
                values = [run[key] for run in runs if run[key] is not None]
                medians[key] = statistics.median(values) if values else None
            out[name][c] = medians | {"errors": sum(run["errors"] for run in runs), "rounds": len(runs)}
            m = out[name][c]
            path = ""
            if m["path_p50"] is not None:
                path = f"  server p50 {m['server_p50']:.2f} ms, path adds {m['path_p50']:.2f} ms"
            if m["router_cpu_us"] is not None:
                path += f"  router CPU {m['router_cpu_us']:.0f} us/request"
            print(f"{name:32} c={c:<3} {m['req_s']:7.0f} req/s  p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms  "
                  f"errors {m['errors']}{path}", flush=True)  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3, help="runs per way and concurrency (the median counts)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    report: dict[str, dict] = {"loadavg_start": os.getloadavg()[0]}
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"training credit-default ({args.trees} trees) and compiling it ...", flush=True)
        rows = train(tmp / "model", args.trees)
        compile_model(tmp / "model", tmp / "compiled")
        body = orjson.dumps({"dataframe_records": rows.head(1).to_dict(orient="records")},
                            option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
        try:
            live, shadow, echo, routed, mirrored, echo_routed = (free_port() for _ in range(6))
            (tmp / "shadow").mkdir()
            procs += [start_ours(tmp / "model", live, 1, tmp, compiled=tmp / "compiled")]
            procs += [start_ours(tmp / "model", shadow, 1, tmp / "shadow", compiled=tmp / "compiled")]
            procs += [start_echo(echo)]
            url = {p: f"http://127.0.0.1:{p}" for p in (live, shadow, echo)}
            procs += [start_router({"backends": {"r1": url[live]}, "weights": {"r1": 100}}, routed, tmp)]
            mirror = {"backends": {"r1": url[live], "r2": url[shadow]}, "weights": {"r1": 100},
                      "mirror": {"to": "r2", "percent": 100}}  # fmt: skip
            procs += [start_router(mirror, mirrored, tmp)]
            procs += [start_router({"backends": {"e": url[echo]}, "weights": {"e": 100}}, echo_routed, tmp)]
            for port, proc in zip((live, shadow, echo, routed, mirrored, echo_routed), procs, strict=True):
                wait_ready(f"http://127.0.0.1:{port}/health/ready" if port != echo else url[echo] + "/", proc)
            report |= measure({"model direct": live, "model via router": routed,
                               "model via router, 100% mirrored": mirrored}, body, args,
                               telemetry=tmp / "telemetry.jsonl",
                               routers={"model via router": procs[3].pid,
                                        "model via router, 100% mirrored": procs[4].pid})  # fmt: skip
            report |= measure({"echo direct": echo, "echo via router": echo_routed}, body, args,
                              routers={"echo via router": procs[5].pid})  # fmt: skip
        finally:
            for proc in procs:
                stop(proc)
    report["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({"loadavg": [report["loadavg_start"], report["loadavg_end"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
