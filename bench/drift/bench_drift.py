"""The drift table for 1,000,000 production rows x the 23 credit-default features against a 100,000-row baseline:
our code (``apps.monitoring.drift``) next to Evidently's data-drift report on the same data, in one run.

    make bench-drift          # builds bench/drift/.venv (Evidently) on first use, then runs this
    .venv/bin/python bench/drift/bench_drift.py [--rows 1000000] [--baseline-rows 100000] [--repeat 3] [--no-evidently]

Checks: every feature's PSI equals a plain numpy reference within 1e-9, and ours is at least 20x faster than
Evidently (exit status 1 otherwise). Data is cached under var/bench/drift/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from apps.demo.registry.credit_default import CATEGORICAL_COLUMNS, INPUT_COLUMNS, NUMERIC_COLUMNS, make_frame  # noqa: E402
from apps.monitoring.drift import EPSILON, drift_table, profile_build  # noqa: E402

BENCH_VENV_PYTHON = ROOT / "bench" / "drift" / ".venv" / "bin" / "python"
DATA = ROOT / "var" / "bench" / "drift"
GOAL = 20.0
PSI_TOLERANCE = 1e-9


def data(rows: int, baseline_rows: int) -> tuple[Path, Path]:
    """The baseline (seed 1, no shift) and production (seed 2, shifted by 0.2: amounts up 20%, more delays)."""
    DATA.mkdir(parents=True, exist_ok=True)
    reference, current = DATA / f"reference-{baseline_rows}.parquet", DATA / f"current-{rows}.parquet"
    if not reference.exists():
        make_frame(baseline_rows, seed=1)[INPUT_COLUMNS].to_parquet(reference, index=False)
    if not current.exists():
        make_frame(rows, seed=2, shift=0.2)[INPUT_COLUMNS].to_parquet(current, index=False)
    return reference, current


def numpy_psi(reference: np.ndarray, current: np.ndarray, *, numeric: bool, bins: int = 10, top_k: int = 10) -> float:
    """PSI written out with plain numpy: decile edges (or the top-K categories and "other") of the reference,
    shares of both sides, empty shares raised to EPSILON and renormalised."""
    if numeric:
        edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
        edges = edges[edges > reference.min()]
        expected = np.bincount(np.digitize(reference, edges), minlength=len(edges) + 1)
        actual = np.bincount(np.digitize(current, edges), minlength=len(edges) + 1)
    else:
        values, counts = np.unique(reference, return_counts=True)
        order = np.lexsort((values, -counts))[:top_k]  # most frequent first
        top = values[order]
        expected = np.append(counts[order], len(reference) - counts[order].sum())
        actual_top = np.array([np.sum(current == v) for v in top])
        actual = np.append(actual_top, len(current) - actual_top.sum())
    e = np.clip(expected / expected.sum(), EPSILON, None)
    a = np.clip(actual / actual.sum(), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def ours(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[float, float, list[dict]]:
    began = time.perf_counter()
    baseline = profile_build(reference, model_name="credit-default", model_version="bench")
    profiled = time.perf_counter()
    table = drift_table(baseline, current)
    return profiled - began, time.perf_counter() - profiled, table


def evidently(reference: Path, current: Path, method: str = "") -> dict:
    if not BENCH_VENV_PYTHON.exists():
        raise SystemExit("No bench venv: run `make bench-drift` (it creates bench/drift/.venv with Evidently).")
    command = [
        str(BENCH_VENV_PYTHON),
        str(Path(__file__).with_name("evidently_report.py")),
        str(reference),
        str(current),
        ",".join(NUMERIC_COLUMNS),
        ",".join(CATEGORICAL_COLUMNS),
        method,
    ]
    out = subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of our code (the best is quoted)")
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--evidently-psi", action="store_true", help="also run Evidently with method=psi")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    reference_path, current_path = data(args.rows, args.baseline_rows)
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    print(f"baseline {len(reference):,} rows, production {len(current):,} rows, {len(reference.columns)} features")

    runs = [ours(reference, current) for _ in range(args.repeat)]
    profile_s, table_s, table = min(runs, key=lambda r: r[0] + r[1])
    total = profile_s + table_s
    print(
        f"ours: {total:.3f} s (baseline profile {profile_s:.3f} s + drift table {table_s:.3f} s), best of {args.repeat}"
    )

    worst = 0.0
    for row in table:
        expected = numpy_psi(
            reference[row["name"]].to_numpy(),
            current[row["name"]].to_numpy(),
            numeric=row["kind"] == "numeric",
        )
        worst = max(worst, abs(expected - row["psi"]))
    print(f"PSI vs plain numpy: max |diff| = {worst:.3e} over {len(table)} features (tolerance {PSI_TOLERANCE:g})")
    print("top 5 by PSI: " + ", ".join(f"{r['name']} {r['psi']:.3f}" for r in table[:5]))
    ok = worst <= PSI_TOLERANCE and len(table) == 23

    if not args.no_evidently:
        theirs = evidently(reference_path, current_path)
        ratio = theirs["seconds"] / total
        print(f"evidently DataDriftPreset (default tests): {theirs['seconds']:.2f} s -> ours is {ratio:.1f}x faster")
        print(f"  evidently compared {theirs['columns']} columns with {', '.join(theirs['tests_used'])}")
        ok = ok and ratio >= GOAL
        if args.evidently_psi:
            psi_run = evidently(reference_path, current_path, "psi")
            ratio_psi = psi_run["seconds"] / total
            print(f"evidently DataDriftPreset(method='psi'): {psi_run['seconds']:.2f} s -> {ratio_psi:.1f}x faster")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
