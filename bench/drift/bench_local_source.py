"""The local telemetry source on a big file: a week of lines, before (re-read and re-parse the whole file on every
request, the implementation of commit 7714ffa) and after (columns kept per file, only appended bytes parsed).

    .venv/bin/python bench/drift/bench_local_source.py [--lines 1000000] [--sampled 0.02]

The file is cached under var/bench/drift/. Prints seconds per request of the "Last week" window.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from apps.demo.registry.credit_default import INPUT_COLUMNS, make_frame  # noqa: E402
from apps.monitoring.drift import profile_build  # noqa: E402
from apps.monitoring.sources.local import LocalTelemetrySource  # noqa: E402

DATA = ROOT / "var" / "bench" / "drift" / "telemetry"
BEFORE_COMMIT = "7714ffa"
END = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WEEK, BIN = timedelta(days=7), timedelta(hours=2)
DEPLOYMENT = SimpleNamespace(
    name="credit-default", model_name="credit-default", environment=SimpleNamespace(name="bench")
)


def telemetry_file(lines: int, sampled: float) -> Path:
    """``lines`` requests spread over the week before END; a share ``sampled`` carries one input row."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"bench--credit-default-{lines}-{sampled}.jsonl"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    rows = make_frame(20_000, seed=3)[INPUT_COLUMNS].to_dict(orient="records")
    start = (END - WEEK).timestamp()
    step = WEEK.total_seconds() / lines
    with (DATA / "partial.jsonl").open("w") as handle:
        for i in range(lines):
            when = datetime.fromtimestamp(start + i * step, UTC)
            line = {
                "schema": 1, "type": "scoring_request", "time": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "deployment": "credit-default", "model": "credit-default", "model_version": "1", "revision": "r1",
                "request_id": str(i), "route": "/invocations", "status": 200 if rng.random() > 0.01 else 500,
                "latency_ms": round(float(rng.gamma(2.0, 6.0)), 2), "rows": 1, "batch_rows": 1, "sampled": False,
            }  # fmt: skip
            if rng.random() < sampled:
                line.update(sampled=True, inputs=[rows[i % len(rows)]], outputs=[int(rng.random() < 0.2)])
            handle.write(json.dumps(line) + "\n")
    os.replace(DATA / "partial.jsonl", path)
    return path


def before_source(directory: Path):
    """The local source as it was at BEFORE_COMMIT, loaded from git into a module of its own."""
    text = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:apps/monitoring/sources/local.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    module_path = DATA / "local_before.py"
    module_path.write_text(text)
    spec = importlib.util.spec_from_file_location("local_before", module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.LocalTelemetrySource.__abstractmethods__ = frozenset()  # it predates sampled_rows
    return module.LocalTelemetrySource(telemetry_dir=directory)


def timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--sampled", type=float, default=0.02)
    args = parser.parse_args()
    source_file = telemetry_file(args.lines, args.sampled)
    directory = DATA / "run"
    directory.mkdir(exist_ok=True)
    path = directory / "bench--credit-default.jsonl"
    path.unlink(missing_ok=True)
    path.write_bytes(source_file.read_bytes())
    size = path.stat().st_size
    baseline = profile_build(make_frame(20_000, seed=4)[INPUT_COLUMNS], model_name="credit-default", model_version="1")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"file: {args.lines:,} lines, {size / 2**20:.0f} MiB, {args.sampled:.0%} sampled; window: last week, 2 h bins"
    )

    old = before_source(directory)
    old_latency = timed(lambda: old.latency_series(DEPLOYMENT, WEEK, BIN, end=END))
    old_drift = timed(lambda: old.drift_counts(DEPLOYMENT, WEEK, BIN, baseline, end=END))
    print(f"before: latency {old_latency:.2f} s, drift {old_drift:.2f} s per request (every request re-reads the file)")

    new = LocalTelemetrySource(telemetry_dir=directory)
    cold = timed(lambda: new.latency_series(DEPLOYMENT, WEEK, BIN, end=END))
    warm_latency = min(timed(lambda: new.latency_series(DEPLOYMENT, WEEK, BIN, end=END)) for _ in range(3))
    warm_drift = min(timed(lambda: new.drift_counts(DEPLOYMENT, WEEK, BIN, baseline, end=END)) for _ in range(3))
    with path.open("ab") as handle:  # a minute more of traffic arrives
        tail = source_file.read_bytes().splitlines(keepends=True)[-1000:]
        handle.writelines(tail)
    appended = timed(lambda: new.latency_series(DEPLOYMENT, WEEK, BIN, end=END))
    print(f"after: first request {cold:.2f} s (reads the file once), then latency {warm_latency:.3f} s, "
          f"drift {warm_drift:.3f} s; after 1,000 appended lines {appended:.3f} s")  # fmt: skip
    same_old = old.latency_series(DEPLOYMENT, WEEK, BIN, end=END)
    same_new = new.latency_series(DEPLOYMENT, WEEK, BIN, end=END)
    assert [(b.start, b.requests, b.p50, b.p99) for b in same_old.bins] == [
        (b.start, b.requests, b.p50, b.p99) for b in same_new.bins
    ], "before and after disagree"
    print("before and after give the same bins")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
