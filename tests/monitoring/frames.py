"""Baseline tables whose columns match the demo credit-default model's signature (its 23 inputs)."""

from __future__ import annotations

import pandas as pd

from apps.demo.registry import credit_default


def credit_inputs(rows: int = 50, *, seed: int = 0) -> pd.DataFrame:
    return credit_default.make_frame(rows, seed=seed).drop(columns=[credit_default.TARGET])


def credit_inputs_csv(rows: int = 50) -> bytes:
    return credit_inputs(rows).to_csv(index=False).encode()
