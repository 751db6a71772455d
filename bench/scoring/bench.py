"""Benchmark: `mlflow models serve --env-manager local` vs our scoring server, same model, same workers.

    .venv/bin/python bench/scoring/bench.py [--duration 10] [--workers 1] [--json out.json] [--estimator forest]
        [--scenario '64-row, c=8'] [--skip-mlflow] [--skip-echo] [--profile [--profile-scenario '64-row, c=8']]

Trains the credit-default pipeline (one-hot + RandomForest, 200 trees; ``--estimator xgboost`` or ``lightgbm``
puts an XGBClassifier or LGBMClassifier of as many trees in the forest's place), saves it as an MLflow model,
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
_ALL_SCENARIOS = list(SCENARIOS)


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


def train(model_dir: Path, trees: int, estimator: str = "forest"):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from apps.demo.registry.credit_default import INPUT_COLUMNS, TARGET, build_pipeline, make_frame

    frame = make_frame(5000, seed=1)
    features = frame[INPUT_COLUMNS]
    pipeline = build_pipeline(n_estimators=trees)
    save_options: dict = {"skops_trusted_types": ["sklearn.tree._tree.Tree"]}
    if estimator == "xgboost":
        from xgboost import XGBClassifier

        pipeline.steps[-1] = ("model", XGBClassifier(n_estimators=trees, max_depth=6, n_jobs=1))
        save_options = {"serialization_format": "cloudpickle"}
    elif estimator == "lightgbm":
        from lightgbm import LGBMClassifier

        pipeline.steps[-1] = ("model", LGBMClassifier(n_estimators=trees, num_leaves=63, n_jobs=1, verbose=-1))
        save_options = {"serialization_format": "cloudpickle"}
    pipeline.fit(features, frame[TARGET])
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir),
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(3),
        **save_options,
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


def start_ours(model_dir: Path, port: int, workers: int, tmp: Path, *, compiled: Path | None = None,
               profile: Path | None = None) -> subprocess.Popen:  # fmt: skip
    """Our server; with ``compiled``, on the model compiled by ``python -m scoring compile`` (as the image build
    does), else on the original runtime (``SCORING_RUNTIME=original``: the server before the compiled runtime)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "scoring-image"), SCORING_TELEMETRY_PATH=str(tmp / "telemetry.jsonl"))
    if compiled is not None:
        env["SCORING_COMPILED_DIR"] = str(compiled)
    else:
        env["SCORING_RUNTIME"] = "original"
    cmd = [sys.executable, "-m", "scoring", "serve", str(model_dir), "--port", str(port), "--workers", str(workers)]
    if profile is not None:
        cmd[1:1] = ["-m", "cProfile", "-o", str(profile)]
    log = (tmp / f"ours-{'compiled' if compiled else 'original'}.log").open("wb")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)


def start_echo(port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "scoring-image"))
    cmd = [sys.executable, str(HERE / "echo.py"), str(port)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def compile_model(model_dir: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "scoring-image"))
    cmd = [sys.executable, "-m", "scoring", "compile", str(model_dir), str(out)]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


# Where the time of a scoring request goes, by the module its functions live in (profile's own time).
PROFILE_PARTS = {
    "HTTP (scoring/http.py, httptools, uvloop, sockets)": ("scoring/http.py", "httptools", "uvloop", "socket"),
    "JSON parsing and protocol (scoring/protocol.py, orjson)": ("scoring/protocol.py", "orjson", "json/"),
    "validation and batching (scoring/model.py, scoring/app.py)": ("scoring/model.py", "scoring/app.py"),
    "preprocessing in numpy (scoring/compiled.py, numpy)": ("scoring/compiled.py", "numpy"),
    "ONNX Runtime / Treelite": ("onnxruntime", "treelite", "InferenceSession"),
    "telemetry and metrics": ("scoring/telemetry.py", "scoring/metrics.py", "prometheus_client"),
}


def _own_times(path: Path) -> dict[tuple, float]:
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    return {key: value[2] for key, value in stats.items()}


def profile_shares(loaded: Path, idle: Path) -> dict[str, float]:
    """Share of the busy time under load per part (``PROFILE_PARTS``): the profile of a run under load minus
    that of an idle run of the same length (start-up, model loading and warm-up cancel out), without the
    event loop's waiting for events."""
    busy_load, busy_idle = _own_times(loaded), _own_times(idle)
    totals: dict[str, float] = {}
    for key, seconds in busy_load.items():
        filename, _line, name = key
        extra = seconds - busy_idle.get(key, 0.0)
        if extra <= 0 or "select" in name or "poll" in name or "run_forever" in name or "uvloop.Loop" in name:
            continue
        where = f"{filename}:{name}"
        part = next((p for p, keys in PROFILE_PARTS.items() if any(k in where for k in keys)), "other")
        totals[part] = totals.get(part, 0.0) + extra
    busy = sum(totals.values())
    return {part: t / busy for part, t in sorted(totals.items(), key=lambda kv: -kv[1])} if busy else {}


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
    parser.add_argument("--estimator", choices=["forest", "xgboost", "lightgbm"], default="forest")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-mlflow", action="store_true", help="only our server, original and compiled")
    parser.add_argument("--profile", action="store_true", help="also profile the compiled server (--profile-scenario)")
    parser.add_argument(
        "--scenario", action="append", help="only these scenarios (e.g. '64-row, c=8'; spaces optional)"
    )
    parser.add_argument("--skip-echo", action="store_true", help="skip the HTTP layer alone (echo handler)")
    parser.add_argument(
        "--profile-scenario", default="1-row, c=32", help="the scenario --profile runs (default: 1-row, c=32)"
    )
    args = parser.parse_args()
    if args.scenario:
        wanted = {s.replace(" ", "") for s in args.scenario}
        SCENARIOS[:] = [s for s in SCENARIOS if s[0].replace(" ", "") in wanted]
    profiled = next(
        (s for s in _ALL_SCENARIOS if s[0].replace(" ", "") == args.profile_scenario.replace(" ", "")), None
    )
    if profiled is None:
        parser.error(f"unknown --profile-scenario {args.profile_scenario!r}")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")

    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as tmpdir:
        tmp = Path(tmpdir)
        model_dir = tmp / "model"
        print(f"training credit-default ({args.estimator}, {args.trees} trees) ...", flush=True)
        rows = train(model_dir, args.trees, args.estimator)
        limit = in_process_limit(model_dir, rows)
        compact = in_process_limit(model_dir, rows, compact_warnings=True)
        print("in-process predict (median ms): " + ", ".join(f"{n} rows {ms:.1f}" for n, ms in limit.items()))
        print("  with one warning filter:      " + ", ".join(f"{n} rows {ms:.1f}" for n, ms in compact.items()))

        decision = compile_model(model_dir, tmp / "compiled")
        print(f"compiled: {decision['runtime']} ({decision['reason']}), max difference {decision.get('max_abs_diff')}")
        report: dict[str, dict] = {}
        starters = {
            "mlflow": lambda port: start_mlflow(model_dir, port, args.workers, tmp / "mlflow.log"),
            "ours": lambda port: start_ours(model_dir, port, args.workers, tmp),
            "compiled": lambda port: start_ours(model_dir, port, args.workers, tmp, compiled=tmp / "compiled"),
        }
        for label, starter in starters.items():
            if label == "mlflow" and args.skip_mlflow:
                continue
            port = free_port()
            proc = starter(port)
            try:
                wait_ready(f"http://127.0.0.1:{port}/" + ("ping" if label == "mlflow" else "health/ready"), proc)
                if args.workers > 1 and label != "mlflow":
                    time.sleep(5)  # every worker loads its own model
                if label == "compiled":
                    runtime = requests.get(f"http://127.0.0.1:{port}/version", timeout=5).json()["runtime"]["active"]
                    assert runtime == decision["runtime"], runtime
                print(f"driving {label} (workers={args.workers}) ...", flush=True)
                report[label] = {name: row(r) for name, r in drive(port, rows, args.duration, args.warmup).items()}
            finally:
                stop(proc)

        echo = {}
        if not args.skip_echo:
            port = free_port()
            proc = start_echo(port)
            try:
                wait_ready(f"http://127.0.0.1:{port}/", proc)
                body = orjson.dumps({"dataframe_records": rows.head(1).to_dict(orient="records")},
                                    option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
                echo = {c: run_load(port, body, concurrency=c, duration=args.duration, warmup=args.warmup)
                        for c in (1, 32)}  # fmt: skip
            finally:
                stop(proc)

        shares: dict[str, float] = {}
        if args.profile:
            _, profile_rows, profile_c = profiled
            body = orjson.dumps({"dataframe_records": rows.head(profile_rows).to_dict(orient="records")},
                                option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
            for name in ("idle", "loaded"):
                port = free_port()
                proc = start_ours(model_dir, port, 1, tmp, compiled=tmp / "compiled", profile=tmp / f"{name}.prof")
                try:
                    wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
                    if name == "loaded":
                        run_load(port, body, concurrency=profile_c, duration=args.duration, warmup=1)
                    else:
                        time.sleep(args.duration + 1)
                finally:
                    stop(proc)
            shares = profile_shares(tmp / "loaded.prof", tmp / "idle.prof")

    limit_rows_s = 32 / limit[32] * 1000
    servers = [label for label in ("mlflow", "ours", "compiled") if label in report]
    print()
    print(f"Machine: {os.cpu_count()} cores; workers={args.workers}; {args.duration:.0f}s per scenario after "
          f"{args.warmup:.0f}s warm-up; closed loop, keep-alive; body = dataframe_records.")  # fmt: skip
    print("ours = SCORING_RUNTIME=original (the server before the compiled runtime); "
          "compiled = the same server on the compiled model.")  # fmt: skip
    print()
    print("| scenario | server | req/s | rows/s | p50 ms | p95 ms | p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, *_ in SCENARIOS:
        for label in servers:
            r = report[label][name]
            print(f"| {name} | {label} | {r['req_s']:.0f} | {r['rows_s']:.0f} | {r['p50']:.2f} | {r['p95']:.2f} | "
                  f"{r['p99']:.2f} | {r['errors']} |")  # fmt: skip
    print()
    print("| scenario | compiled/ours throughput | compiled/mlflow throughput | p99 compiled/ours |")
    print("| --- | ---: | ---: | ---: |")
    for name, *_ in SCENARIOS:
        a, b = report["ours"][name], report["compiled"][name]
        m = report.get("mlflow", {}).get(name)
        vs_mlflow = f"{b['req_s'] / m['req_s']:.0f}x" if m else "-"
        print(f"| {name} | {b['req_s'] / a['req_s']:.1f}x | {vs_mlflow} | {b['p99'] / a['p99']:.3f} |")
    print()
    print("Inside our server (from its /metrics), per scenario: share of time in the model's predict, "
          "mean predict call, rows per call:")  # fmt: skip
    for label in ("ours", "compiled"):
        for name, *_ in SCENARIOS:
            srv = report[label][name]["server"]
            if srv:
                print(f"- {label} {name}: predict busy {srv['predict_busy']:.0%}, {srv['predict_ms']:.2f} ms per call, "
                      f"{srv['rows_per_call']:.1f} rows per call")  # fmt: skip
    print()
    for c, result in echo.items():
        print(f"HTTP layer alone (echo handler, 1-row body) at c={c}: {result.throughput:.0f} req/s, "
              f"p50 {result.percentile(50):.2f} ms, p99 {result.percentile(99):.2f} ms")  # fmt: skip
    if shares:
        print()
        print(f"Profile of the compiled server at {profiled[0]} (share of busy time by part):")
        for part, share in shares.items():
            print(f"- {part}: {share:.0%}")
    print()
    print(f"In-process limit of the original: predict of 32 rows {limit[32]:.1f} ms = {limit_rows_s:.0f} rows/s "
          f"(1 row {limit[1]:.1f} ms, 64 rows {limit[64]:.1f} ms); with one warning filter: 32 rows "
          f"{compact[32]:.1f} ms.")  # fmt: skip
    print(f"Compiled in-process (the compiler's own timing): {decision.get('candidates')}")
    if args.json:
        payload = {
            "limit_ms": limit,
            "limit_one_filter_ms": compact,
            "results": report,
            "workers": args.workers,
            "echo": {
                c: {"req_s": r.throughput, "p50": r.percentile(50), "p99": r.percentile(99)} for c, r in echo.items()
            },
            "profile": shares,
            "decision": decision,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
