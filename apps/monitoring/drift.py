"""Drift math: baseline profiles from reference data, and PSI / Jensen-Shannon / chi-squared per bin.

Pure functions over numpy arrays; no Django, no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import rel_entr
from scipy.stats import chisquare

from apps.monitoring.types import BaselineProfile, FeatureProfile

__all__ = ["EPSILON", "profile_build", "feature_profile", "psi", "js_distance", "chi2_pvalue", "frequencies"]

# Empty bins get this share before the log in PSI (and are renormalised), the usual convention.
EPSILON = 1e-4


def _categorical_text(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.map(lambda v: str(v).lower())
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


def profile_build(
    frame: pd.DataFrame, *, model_name: str, model_version: str, bins: int = 10, top_k: int = 10
) -> BaselineProfile:
    return BaselineProfile(
        model_name=model_name,
        model_version=str(model_version),
        rows=len(frame),
        features=[feature_profile(str(c), frame[c], bins=bins, top_k=top_k) for c in frame.columns],
    )


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
