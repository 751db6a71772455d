"""A/B of our server against a baseline checkout of it, on the same model, interleaved.

```
git archive HEAD~1 | tar -x -C /tmp/baseline
.venv/bin/python bench/scoring/ab.py /tmp/baseline/scoring-image [--rounds 3] [--duration 5]
```

On a shared machine the full benchmark's absolute numbers move with the load; this runs both
servers side by side on one trained model and alternates short measurements (A, B, A, B, ...), so
both see the same load. It prints req/s and p99 for each scenario and round, and the median ratio.
"""

from __future__ import annotations

import argparse
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

from bench import free_port, stop, train, wait_ready  # noqa: E402

SCENARIOS = [("1-row, c=32", 1, 32), ("64-row, c=8", 64, 8)]


def start(server_dir: Path, model_dir: Path, port: int, tmp: Path, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(server_dir), SCORING_TELEMETRY_PATH=str(tmp / f"{name}.jsonl"))
    cmd = [sys.executable, "-m", "scoring", "serve", str(model_dir), "--port", str(port)]
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", type=Path, help="the baseline's scoring-image directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--trees", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = train(tmp / "model", args.trees)
        servers = {"baseline": args.baseline.resolve(), "current": HERE.parents[1] / "scoring-image"}
        ports = {name: free_port() for name in servers}
        procs = {name: start(path, tmp / "model", ports[name], tmp, name) for name, path in servers.items()}
        try:
            for name, proc in procs.items():
                wait_ready(f"http://127.0.0.1:{ports[name]}/health/ready", proc)
            for label, n, concurrency in SCENARIOS:
                body = orjson.dumps({"dataframe_records": rows.head(n).to_dict(orient="records")})
                seen: dict[str, list[float]] = {name: [] for name in servers}
                for r in range(args.rounds):
                    for name in servers:
                        res = run_load(ports[name], body, concurrency=concurrency, duration=args.duration, warmup=1)
                        seen[name].append(res.throughput)
                        p99 = res.percentile(99)
                        print(
                            f"{label} round {r + 1} {name}: {res.throughput:.0f} req/s,",
                            f"p99 {p99:.1f} ms, errors {res.errors}",
                        )
                ratio = statistics.median(c / b for c, b in zip(seen["current"], seen["baseline"], strict=True))
                print(f"{label}: current/baseline throughput, median of {args.rounds} rounds: {ratio:.2f}")
        finally:
            for proc in procs.values():
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
