"""The credit-default classifier of the reference proof of concept, on synthetic rows.

The 23 input columns follow ``shared/data/credit-default-inference-sample.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

__all__ = [
    "CATEGORICAL_COLUMNS",
    "NUMERIC_COLUMNS",
    "INPUT_COLUMNS",
    "TARGET",
    "make_frame",
    "build_pipeline",
]

SEXES = ["female", "male"]
EDUCATIONS = ["graduate_school", "university", "high_school", "others"]
MARRIAGES = ["married", "single", "others"]
REPAYMENT = ["duly_paid", "no_delay", "revolving"] + [f"delay_{m}_months" for m in range(1, 9)]

REPAYMENT_COLUMNS = [f"repayment_status_{i}" for i in range(1, 7)]
BILL_COLUMNS = [f"bill_amount_{i}" for i in range(1, 7)]
PAYMENT_COLUMNS = [f"payment_amount_{i}" for i in range(1, 7)]

CATEGORICAL_COLUMNS = ["sex", "education", "marriage", *REPAYMENT_COLUMNS]
NUMERIC_COLUMNS = ["credit_limit", "age", *BILL_COLUMNS, *PAYMENT_COLUMNS]
# Column order of the reference inference sample.
INPUT_COLUMNS = [
    "credit_limit",
    "sex",
    "education",
    "marriage",
    "age",
    *REPAYMENT_COLUMNS,
    *BILL_COLUMNS,
    *PAYMENT_COLUMNS,
]
TARGET = "default"


def make_frame(rows: int, *, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Synthetic applicants with a ``default`` label that depends on delays and utilisation.

    ``shift`` moves the numeric distributions (0.2 = amounts 20% higher, more delays),
    for drift demos.
    """
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {
        "credit_limit": (rng.lognormal(10.2, 0.6, rows) * (1 + shift)).round(-3).clip(1000, 800_000).astype("int64"),
        "sex": rng.choice(SEXES, rows, p=[0.6, 0.4]),
        "education": rng.choice(EDUCATIONS, rows, p=[0.35, 0.47, 0.16, 0.02]),
        "marriage": rng.choice(MARRIAGES, rows, p=[0.45, 0.53, 0.02]),
        "age": (rng.gamma(9.0, 4.0, rows) + 12 + 10 * shift).round().clip(21, 79).astype("int64"),
    }
    delay_p = np.array([0.18, 0.5, 0.12] + [0.2 * (0.5**m) for m in range(1, 9)])
    delay_p = np.roll(delay_p, int(round(shift * 3)))
    delay_p /= delay_p.sum()
    for column in REPAYMENT_COLUMNS:
        data[column] = rng.choice(REPAYMENT, rows, p=delay_p)
    limit = np.asarray(data["credit_limit"], dtype=float)
    for column in BILL_COLUMNS:
        data[column] = (limit * rng.beta(2, 5, rows) * (1 + shift)).round(2)
    for column, bill in zip(PAYMENT_COLUMNS, BILL_COLUMNS, strict=False):
        data[column] = (np.asarray(data[bill]) * rng.beta(1.2, 6, rows)).round(2)
    frame = pd.DataFrame(data)[INPUT_COLUMNS]

    delays = sum(frame[c].str.startswith("delay").astype(int) for c in REPAYMENT_COLUMNS)
    utilisation = frame["bill_amount_1"] / frame["credit_limit"]
    logit = -3.0 + 0.9 * delays + 3.0 * utilisation - 0.02 * (frame["age"] - 35)
    frame[TARGET] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame


def build_pipeline(*, n_estimators: int = 200, seed: int = 0) -> Pipeline:
    """One-hot encode the categoricals, pass the numbers through, then a random forest."""
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_COLUMNS)],
        remainder="passthrough",
    )
    forest = RandomForestClassifier(n_estimators=n_estimators, max_depth=10, random_state=seed, n_jobs=1)
    return Pipeline([("encode", encode), ("model", forest)])
