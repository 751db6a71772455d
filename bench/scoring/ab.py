"""A/B of our server against a baseline checkout of it, on the same model, interleaved.

```
git archive HEAD~1 | tar -x -C /tmp/baseline
.venv/bin/python bench/scoring/ab.py /tmp/baseline/scoring-image [--rounds 3] [--duration 5] \
    [--compiled] [--original] [--scenario 64-row,c=8]
```

On a shared machine the full benchmark's absolute numbers move with the load; this runs both
servers side by side on one trained model and alternates short measurements (A, B, A, B, ...), so
both see the same load. It prints req/s, rows/s and p99 for each scenario and round, and the median ratio.

``--compiled``: each server serves the model compiled by its own ``python -m scoring compile`` (as its image
build would). ``--original``: a third server, the current code on the original runtime
(``SCORING_RUNTIME=original``, what the README calls "ours (before)"), measured in the same rounds, so each
server's throughput is also shown as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this directory first: `bench` is bench.py

from loadgen import run_load  # noqa: E402

from bench import free_port, scrape, stop, train, wait_ready  # noqa: E402

SCENARIOS = [("1-row, c=32", 1, 32), ("64-row, c=8", 64, 8)]


def compile_with(server_dir: Path, model_dir: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(server_dir))
    cmd = [sys.executable, "-m", "scoring", "compile", str(model_dir), str(out)]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def start(
    server_dir: Path, model_dir: Path, port: int, tmp: Path, name: str, *, compiled: Path | None, original: bool
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(server_dir), SCORING_TELEMETRY_PATH=str(tmp / f"{name}.jsonl"))
    if compiled is not None:
        env["SCORING_COMPILED_DIR"] = str(compiled)
    if original:
        env["SCORING_RUNTIME"] = "original"
    cmd = [sys.executable, "-m", "scoring", "serve", str(model_dir), "--port", str(port)]
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", type=Path, help="the baseline's scoring-image directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--compiled", action="store_true", help="both servers on the model their compiler made")
    parser.add_argument("--original", action="store_true", help="also the current code on the original runtime")
    parser.add_argument(
        "--scenario", action="append", help="only these scenarios (e.g. '64-row, c=8'; spaces optional)"
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    wanted = {s.replace(" ", "") for s in args.scenario or []}
    scenarios = [s for s in SCENARIOS if not wanted or s[0].replace(" ", "") in wanted]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = tmp / "model"
        rows = train(model_dir, args.trees)
        servers = {"baseline": args.baseline.resolve(), "current": HERE.parents[1] / "scoring-image"}
        compiled: dict[str, Path | None] = {name: None for name in servers}
        if args.compiled:
            for name, path in servers.items():
                compiled[name] = tmp / f"compiled-{name}"
                decision = compile_with(path, model_dir, tmp / f"compiled-{name}")
                print(f"{name} compiled: {decision['runtime']} ({decision['reason']})", flush=True)
        if args.original:
            servers = {"original": servers["current"], **servers}
            compiled["original"] = None
        ports = {name: free_port() for name in servers}
        procs = {
            name: start(path, model_dir, ports[name], tmp, name, compiled=compiled[name], original=name == "original")
            for name, path in servers.items()
        }
        try:
            for name, proc in procs.items():
                wait_ready(f"http://127.0.0.1:{ports[name]}/health/ready", proc)
            for label, n, concurrency in scenarios:
                body = orjson.dumps({"dataframe_records": rows.head(n).to_dict(orient="records")})
                seen: dict[str, list[float]] = {name: [] for name in servers}
                for r in range(args.rounds):
                    for name in servers:
                        before = scrape(ports[name])
                        res = run_load(ports[name], body, concurrency=concurrency, duration=args.duration, warmup=1)
                        after = scrape(ports[name])
                        seen[name].append(res.throughput)
                        calls = (
                            after["scoring_predict_duration_seconds_count"]
                            - before["scoring_predict_duration_seconds_count"]
                        )
                        busy = (
                            after["scoring_predict_duration_seconds_sum"]
                            - before["scoring_predict_duration_seconds_sum"]
                        )
                        print(
                            f"{label} round {r + 1} {name}: {res.throughput:.0f} req/s,",
                            f"{res.throughput * n:.0f} rows/s,",
                            f"p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms, errors {res.errors},",
                            f"predict {busy / calls * 1000 if calls else 0:.2f} ms per call",
                            flush=True,
                        )
                ratio = statistics.median(c / b for c, b in zip(seen["current"], seen["baseline"], strict=True))
                print(f"{label}: current/baseline throughput, median of {args.rounds} rounds: {ratio:.2f}")
                if args.original:
                    for name in ("baseline", "current"):
                        times = statistics.median(c / o for c, o in zip(seen[name], seen["original"], strict=True))
                        print(f"{label}: {name}/original throughput, median of {args.rounds} rounds: {times:.2f}")
        finally:
            for proc in procs.values():
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
