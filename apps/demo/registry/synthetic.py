"""Two more small demo problems, so the registry has several models to browse."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

__all__ = ["house_prices_frame", "house_prices_pipeline", "churn_frame", "churn_pipeline"]

DISTRICTS = ["north", "south", "east", "west", "centre"]
PLANS = ["basic", "standard", "premium"]


def house_prices_frame(rows: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "floor_area_m2": rng.normal(95, 30, rows).clip(25, 400).round(1),
            "rooms": rng.integers(1, 7, rows),
            "building_age_years": rng.integers(0, 120, rows),
            "district": rng.choice(DISTRICTS, rows),
        }
    )
    premium = frame["district"].map({"centre": 1.5, "north": 1.15, "south": 0.9, "east": 1.0, "west": 1.05})
    frame["price"] = (
        frame["floor_area_m2"] * 3200 * premium
        + frame["rooms"] * 9000
        - frame["building_age_years"] * 450
        + rng.normal(0, 20000, rows)
    ).round(-2)
    return frame


def house_prices_pipeline(*, n_estimators: int = 100, seed: int = 0) -> Pipeline:
    encode = ColumnTransformer(
        [("district", OneHotEncoder(handle_unknown="ignore"), ["district"])], remainder="passthrough"
    )
    return Pipeline(
        [("encode", encode), ("model", GradientBoostingRegressor(n_estimators=n_estimators, random_state=seed))]
    )


def churn_frame(rows: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, rows),
            "monthly_charges": rng.normal(65, 25, rows).clip(10, 200).round(2),
            "support_tickets": rng.poisson(1.2, rows),
            "plan": rng.choice(PLANS, rows, p=[0.5, 0.35, 0.15]),
        }
    )
    logit = 0.8 - 0.05 * frame["tenure_months"] + 0.015 * frame["monthly_charges"] + 0.45 * frame["support_tickets"]
    frame["churned"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    return frame


def churn_pipeline(*, c: float = 1.0) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("scale", StandardScaler(), ["tenure_months", "monthly_charges", "support_tickets"]),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=c, max_iter=500))])
