"""Benchmark: `mlflow models serve --env-manager local` vs our scoring server, same model, same workers.

    .venv/bin/python bench/scoring/bench.py [--duration 10] [--workers 1] [--json out.json]

Trains the credit-default pipeline (one-hot + RandomForest, 200 trees), saves it as an MLflow model,
starts both servers on it (127.0.0.1, free ports), drives each with the same closed-loop load
(1-row requests at concurrency 1, 8, 32; 64-row requests at concurrency 8) and prints throughput and
latency percentiles, plus the in-process predict time of a batch (the limit). One run, one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

from loadgen import LoadResult, run_load  # noqa: E402

SCENARIOS = [("1-row, c=1", 1, 1), ("1-row, c=8", 1, 8), ("1-row, c=32", 1, 32), ("64-row, c=8", 64, 8)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def train(model_dir: Path, trees: int):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from apps.demo.registry.credit_default import INPUT_COLUMNS, TARGET, build_pipeline, make_frame

    frame = make_frame(5000, seed=1)
    features = frame[INPUT_COLUMNS]
    pipeline = build_pipeline(n_estimators=trees).fit(features, frame[TARGET])
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir),
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(3),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    return make_frame(64, seed=3)[INPUT_COLUMNS]


def in_process_limit(model_dir: Path, rows, *, compact_warnings: bool = False) -> dict[int, float]:
    """Median ms of the estimator's predict on 1, 32 and 64 rows, in this process (no HTTP).

    ``compact_warnings``: with the one warning filter our server runs with (see
    ``scoring.app.compact_warning_filters``) instead of the ~16 that the imports leave.
    """
    import warnings

    import mlflow.pyfunc

    raw = mlflow.pyfunc.load_model(str(model_dir)).get_raw_model()
    saved = list(warnings.filters)
    if compact_warnings:
        warnings.resetwarnings()
        warnings.simplefilter("default")
    out = {}
    try:
        for n in (1, 32, 64):
            frame = rows.head(n)
            raw.predict(frame)
            times = []
            for _ in range(40):
                t0 = time.perf_counter()
                raw.predict(frame)
                times.append((time.perf_counter() - t0) * 1000)
            out[n] = statistics.median(times)
    finally:
        warnings.filters[:] = saved
    return out


def start_mlflow(model_dir: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(bindir / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def start_ours(model_dir: Path, port: int, workers: int, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "scoring-image"), SCORING_TELEMETRY_PATH=str(tmp / "telemetry.jsonl"))
    cmd = [sys.executable, "-m", "scoring", "serve", str(model_dir), "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(tmp / "ours.log").open("wb"), env=env,
                            start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def scrape(port: int) -> dict[str, float] | None:
    """Our server's predict-call counters (None for MLflow's server, which has no /metrics)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return None
    wanted = {
        "scoring_predict_duration_seconds_sum",
        "scoring_predict_duration_seconds_count",
        "scoring_batch_rows_sum",
    }
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values if len(values) == len(wanted) else None


def drive(port: int, rows, duration: float, warmup: float) -> dict[str, LoadResult]:
    results = {}
    for name, n, concurrency in SCENARIOS:
        body = orjson.dumps({"dataframe_records": rows.head(n).to_dict(orient="records")},
                            option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
        before = scrape(port)
        started = time.perf_counter()
        result = run_load(port, body, concurrency=concurrency, duration=duration, warmup=warmup)
        elapsed = time.perf_counter() - started
        after = scrape(port)
        result.rows_per_request = n  # type: ignore[attr-defined]
        result.server = None  # type: ignore[attr-defined]
        if before and after:
            calls = after["scoring_predict_duration_seconds_count"] - before["scoring_predict_duration_seconds_count"]
            busy = after["scoring_predict_duration_seconds_sum"] - before["scoring_predict_duration_seconds_sum"]
            batch_rows = after["scoring_batch_rows_sum"] - before["scoring_batch_rows_sum"]
            result.server = {  # type: ignore[attr-defined]
                "predict_busy": busy / elapsed,
                "predict_ms": busy / calls * 1000 if calls else 0.0,
                "rows_per_call": batch_rows / calls if calls else 0.0,
            }
        results[name] = result
    return results


def row(result: LoadResult) -> dict[str, float]:
    n = result.rows_per_request  # type: ignore[attr-defined]
    return {
        "req_s": result.throughput,
        "rows_s": result.throughput * n,
        "p50": result.percentile(50),
        "p95": result.percentile(95),
        "p99": result.percentile(99),
        "errors": result.errors,
        "requests": result.requests,
        "server": result.server,  # type: ignore[attr-defined]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=1, help="workers for both servers")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")

    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as tmpdir:
        tmp = Path(tmpdir)
        model_dir = tmp / "model"
        print(f"training credit-default ({args.trees} trees) ...", flush=True)
        rows = train(model_dir, args.trees)
        limit = in_process_limit(model_dir, rows)
        compact = in_process_limit(model_dir, rows, compact_warnings=True)
        print("in-process predict (median ms): " + ", ".join(f"{n} rows {ms:.1f}" for n, ms in limit.items()))
        print("  with one warning filter:      " + ", ".join(f"{n} rows {ms:.1f}" for n, ms in compact.items()))

        report: dict[str, dict] = {}
        for label, starter in (("mlflow", start_mlflow), ("ours", start_ours)):
            port = free_port()
            proc = starter(model_dir, port, args.workers, tmp / f"{label}.log" if label == "mlflow" else tmp)
            try:
                wait_ready(f"http://127.0.0.1:{port}/" + ("ping" if label == "mlflow" else "health/ready"), proc)
                if args.workers > 1 and label == "ours":
                    time.sleep(5)  # every worker loads its own model
                print(f"driving {label} (workers={args.workers}) ...", flush=True)
                report[label] = {name: row(r) for name, r in drive(port, rows, args.duration, args.warmup).items()}
            finally:
                stop(proc)

    limit_rows_s = 32 / limit[32] * 1000
    print()
    print(f"Machine: {os.cpu_count()} cores; workers={args.workers}; {args.duration:.0f}s per scenario after "
          f"{args.warmup:.0f}s warm-up; closed loop, keep-alive; body = dataframe_records.")  # fmt: skip
    print()
    print("| scenario | server | req/s | rows/s | p50 ms | p95 ms | p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, *_ in SCENARIOS:
        for label in ("mlflow", "ours"):
            r = report[label][name]
            print(f"| {name} | {label} | {r['req_s']:.0f} | {r['rows_s']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                  f"{r['p99']:.1f} | {r['errors']} |")  # fmt: skip
    print()
    print("| scenario | throughput ours/mlflow | p99 ours/mlflow |")
    print("| --- | ---: | ---: |")
    for name, *_ in SCENARIOS:
        a, b = report["mlflow"][name], report["ours"][name]
        print(f"| {name} | {b['req_s'] / a['req_s']:.1f}x | {b['p99'] / a['p99']:.3f} |")
    print()
    print("Inside our server (from its /metrics), per scenario: share of time in the model's predict, "
          "mean predict call, rows per call:")  # fmt: skip
    for name, *_ in SCENARIOS:
        srv = report["ours"][name]["server"]
        if srv:
            print(f"- {name}: predict busy {srv['predict_busy']:.0%}, {srv['predict_ms']:.1f} ms per call, "
                  f"{srv['rows_per_call']:.1f} rows per call")  # fmt: skip
    print()
    c32 = report["ours"]["1-row, c=32"]["rows_s"]
    print(f"In-process limit: predict of 32 rows {limit[32]:.1f} ms = {limit_rows_s:.0f} rows/s "
          f"(1 row {limit[1]:.1f} ms, 64 rows {limit[64]:.1f} ms).")  # fmt: skip
    compact_rows_s = 32 / compact[32] * 1000
    print(f"With one warning filter (as our server runs it): 32 rows {compact[32]:.1f} ms = "
          f"{compact_rows_s:.0f} rows/s.")  # fmt: skip
    print(f"Ours at 1-row c=32: {c32:.0f} rows/s = limit / {limit_rows_s / c32:.2f} "
          f"(one-filter limit / {compact_rows_s / c32:.2f}).")  # fmt: skip
    if args.json:
        payload = {"limit_ms": limit, "limit_one_filter_ms": compact, "results": report, "workers": args.workers}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
