"""Evidently's data-drift report on the benchmark's data; run by bench_drift.py with the bench venv's python
(``bench/drift/.venv``), because Evidently's pins differ from the product's. Prints one JSON object.

    bench/drift/.venv/bin/python bench/drift/evidently_report.py REF.parquet CUR.parquet NUMERIC,.. CATEGORICAL,..
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def main(reference_path: str, current_path: str, numeric: str, categorical: str, method: str = "") -> None:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    definition = DataDefinition(numerical_columns=numeric.split(","), categorical_columns=categorical.split(","))
    began = time.perf_counter()
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    report = Report([DataDriftPreset(method=method or None)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = report.run(current_data=cur, reference_data=ref)
        result = snapshot.dict()
    seconds = time.perf_counter() - began
    columns = [m for m in result.get("metrics", []) if m.get("metric_name", "").startswith("ValueDrift(")]
    methods = sorted({m["config"].get("method", "") for m in columns})
    summary = next((m["value"] for m in result["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")), {})
    print(
        json.dumps(
            {
                "seconds": seconds,
                "method": method or "default",
                "columns": len(columns),
                "tests_used": methods,
                "drifted_columns": summary.get("count"),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
