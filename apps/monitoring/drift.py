"""Drift math: baseline profiles from reference data, and PSI / Jensen-Shannon / chi-squared per bin.

Pure functions over numpy arrays; no Django, no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import rel_entr
from scipy.stats import chisquare

from apps.monitoring.types import BaselineProfile, FeatureProfile

__all__ = [
    "EPSILON",
    "PREDICTION",
    "profile_build",
    "feature_profile",
    "prediction_profile",
    "prediction_value",
    "category_text",
    "feature_bins",
    "feature_counts",
    "drift_table",
    "psi",
    "js_distance",
    "chi2_pvalue",
    "frequencies",
]

# Empty bins get this share before the log in PSI (and are renormalised), the usual convention.
EPSILON = 1e-4
# The column of a reference set that holds the model's predictions, and the name of the output row of drift.
PREDICTION = "prediction"


def _categorical_text(series: pd.Series) -> pd.Series:
    """Categories as text, spelled as ``category_text`` spells a single value, so counting matches profiling."""
    if pd.api.types.is_bool_dtype(series) or series.dtype == object:
        return series.map(category_text)
    return series.astype(str)


def feature_profile(name: str, series: pd.Series, *, bins: int = 10, top_k: int = 10) -> FeatureProfile:
    """Numeric columns: quantile edges (deduplicated) and the share of values in each bin. Anything else
    (and booleans): the top-K categories by frequency, then "other"."""
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        data = values.to_numpy(dtype=float)
        if len(data) == 0:
            return FeatureProfile(name=name, kind="numeric", frequencies=[1.0], edges=[])
        quantiles = np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1])
        edges = sorted({float(q) for q in quantiles if np.isfinite(q)})
        # edges equal to the minimum would leave an always-empty first bin
        edges = [e for e in edges if e > data.min()]
        counts = np.bincount(np.searchsorted(edges, data, side="right"), minlength=len(edges) + 1)
        return FeatureProfile(name=name, kind="numeric", edges=edges, frequencies=(counts / counts.sum()).tolist())
    text = _categorical_text(values)
    ranked = text.value_counts()
    categories = [str(c) for c in ranked.index[:top_k]]
    total = int(ranked.sum()) or 1
    freqs = [int(ranked[c]) / total for c in categories]
    freqs.append(max(0.0, 1.0 - sum(freqs)))
    return FeatureProfile(name=name, kind="categorical", categories=categories, frequencies=freqs)


def category_text(value) -> str:
    """The category a single value counts as: booleans in lower case, integral numbers without ".0" (a label
    1 predicted as 1.0 is still class "1"), anything else as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def prediction_value(output):
    """The scalar prediction of one output row: the value itself, or the only value of a one-column row
    (``{"label": 1}``, ``[1]``); None for wider rows, which are not profiled."""
    if isinstance(output, dict):
        return next(iter(output.values())) if len(output) == 1 else None
    if isinstance(output, list):
        return output[0] if len(output) == 1 else None
    return output


def prediction_profile(series: pd.Series, *, bins: int = 10, top_k: int = 10) -> FeatureProfile | None:
    """The distribution of a model's predictions. Integral numbers with at most ``top_k`` distinct values are
    class labels and get categories; other numbers (probabilities, regressions) get quantile bins."""
    values = series.map(prediction_value).dropna()
    if values.empty:
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and not pd.api.types.is_bool_dtype(values):
        numbers = numbers.astype(float)
        if numbers.nunique() <= top_k and bool((numbers == numbers.round()).all()):
            return feature_profile(PREDICTION, numbers.astype("int64").astype(str), top_k=top_k)
        return feature_profile(PREDICTION, numbers, bins=bins)
    return feature_profile(PREDICTION, values.map(category_text), top_k=top_k)


def profile_build(
    frame: pd.DataFrame,
    *,
    model_name: str,
    model_version: str,
    bins: int = 10,
    top_k: int = 10,
    predictions: pd.Series | None = None,
) -> BaselineProfile:
    """Profile every column of ``frame`` as an input feature, except a ``prediction`` column, which (like
    ``predictions`` when given) becomes the profile of the model's outputs."""
    if predictions is None and PREDICTION in frame.columns:
        predictions = frame[PREDICTION]
    inputs = frame.drop(columns=[PREDICTION], errors="ignore")
    return BaselineProfile(
        model_name=model_name,
        model_version=str(model_version),
        rows=len(frame),
        features=[feature_profile(str(c), inputs[c], bins=bins, top_k=top_k) for c in inputs.columns],
        prediction=prediction_profile(predictions, bins=bins, top_k=top_k) if predictions is not None else None,
    )


def _as_series(values) -> pd.Series:
    return values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)


def _numbers(series: pd.Series) -> np.ndarray:
    """The values as floats, NaN where missing or unreadable (booleans count as 0 and 1)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    readable = series.map(lambda v: float(v) if isinstance(v, bool) else v)
    return pd.to_numeric(readable, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _category_bins(feature: FeatureProfile, distinct) -> np.ndarray:
    """The bin of each distinct value: its category's position, else "other"."""
    position = {c: i for i, c in enumerate(feature.categories)}
    other = len(feature.categories)
    return np.fromiter((position.get(category_text(u), other) for u in distinct), dtype=np.int64, count=len(distinct))


def feature_bins(feature: FeatureProfile, values) -> np.ndarray:
    """The bin of ``feature`` each of ``values`` falls in, -1 for a missing (or, for numeric features,
    unreadable) value. Vectorised: one searchsorted, or one hash of the distinct values, per feature."""
    series = _as_series(values)
    if feature.kind == "numeric":
        data = _numbers(series)
        bins = np.searchsorted(np.asarray(feature.edges, dtype=float), data, side="right")
        bins[np.isnan(data)] = -1
        return bins
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    lookup = _category_bins(feature, uniques)
    return np.where(codes >= 0, lookup[np.maximum(codes, 0)] if len(lookup) else -1, -1)


def feature_counts(feature: FeatureProfile, values) -> np.ndarray:
    """How many of ``values`` fall in each bin of ``feature`` (missing values are not counted), without a bin
    per row: numeric counts are differences of "how many are below each edge" (one vectorised comparison per
    edge, no search), categorical counts are the distinct values' counts added up per category."""
    series = _as_series(values)
    size = len(feature.frequencies)
    if feature.kind == "numeric":
        data = _numbers(series)
        valid = len(data) - int(np.count_nonzero(np.isnan(data)))
        below = [int(np.count_nonzero(data < edge)) for edge in feature.edges]  # NaN is below nothing
        return np.diff(np.array([0, *below, valid], dtype=np.int64))
    distinct = series.value_counts(dropna=True, sort=False)
    if distinct.empty:
        return np.zeros(size, dtype=np.int64)
    return np.bincount(_category_bins(feature, distinct.index), weights=distinct.to_numpy(), minlength=size).astype(
        np.int64
    )[:size]


def drift_table(baseline: BaselineProfile, frame: pd.DataFrame) -> list[dict]:
    """PSI, Jensen-Shannon distance and (categorical) chi-squared p-value of every baseline feature present in
    ``frame`` (one production window), most drifting first."""
    table = []
    for feature in baseline.features:
        if feature.name not in frame.columns:
            continue
        counts = feature_counts(feature, frame[feature.name])
        table.append(
            {
                "name": feature.name,
                "kind": feature.kind,
                "rows": int(counts.sum()),
                "psi": psi(feature.frequencies, counts),
                "js": js_distance(feature.frequencies, counts),
                "chi2_p": chi2_pvalue(feature.frequencies, counts) if feature.kind == "categorical" else None,
                "counts": counts,
            }
        )
    table.sort(key=lambda row: -row["psi"])
    return table


def frequencies(counts, eps: float = EPSILON) -> np.ndarray:
    """Shares of ``counts`` with empty bins raised to ``eps`` and renormalised."""
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    shares = values / total if total > 0 else np.full(len(values), 1 / len(values))
    shares = np.clip(shares, eps, None)
    return shares / shares.sum()


def psi(expected, actual_counts, eps: float = EPSILON) -> float:
    """Population stability index: sum over bins of (a - e) * ln(a / e), both as epsilon-clipped shares."""
    e = frequencies(expected, eps)
    a = frequencies(actual_counts, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected, actual_counts) -> float:
    """Jensen-Shannon distance (base 2, so between 0 and 1) between the two distributions."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual_counts, dtype=float)
    if a.sum() <= 0 or e.sum() <= 0:
        return float("nan")
    p, q = e / e.sum(), a / a.sum()
    m = (p + q) / 2
    divergence = (np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2 / np.log(2)
    # scipy's jensenshannon takes the root of a tiny negative (NaN) for equal inputs; clamp instead
    return float(np.sqrt(max(divergence, 0.0)))


def chi2_pvalue(expected, actual_counts) -> float:
    """p-value of Pearson's chi-squared goodness of fit of the counts to the expected shares (bins with an
    expected share of zero are merged away by the epsilon clipping)."""
    a = np.asarray(actual_counts, dtype=float)
    n = a.sum()
    if n <= 0 or len(a) < 2:
        return float("nan")
    e = frequencies(expected) * n
    return float(chisquare(a, f_exp=e).pvalue)
