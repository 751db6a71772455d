"""PSI, Jensen-Shannon and chi-squared against plain numpy/scipy reference computations on known shifts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare

from apps.monitoring.drift import EPSILON, chi2_pvalue, feature_profile, js_distance, profile_build, psi


def reference_psi(expected, actual):
    e = np.clip(np.asarray(expected, float) / np.sum(expected), EPSILON, None)
    a = np.clip(np.asarray(actual, float) / np.sum(actual), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_of_identical_distributions_is_zero():
    assert psi([0.25, 0.25, 0.5], [25, 25, 50]) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_a_known_shift():
    expected = [0.5, 0.5]
    actual = [90, 10]
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5)
    exact = 0.4 * math.log(1.8) + (-0.4) * math.log(0.2)
    assert psi(expected, actual) == pytest.approx(exact, abs=1e-12)
    assert psi(expected, actual) > 0.25  # an alert


def test_psi_on_generated_data_matches_reference_and_grows_with_shift():
    rng = np.random.default_rng(7)
    baseline = pd.Series(rng.normal(0, 1, 100_000))
    profile = feature_profile("x", baseline, bins=10)
    assert len(profile.edges) == 9
    assert profile.frequencies == pytest.approx([0.1] * 10, abs=1e-3)
    values = []
    for shift in (0.0, 0.25, 1.0):
        production = rng.normal(shift, 1, 50_000)
        counts = np.bincount(np.searchsorted(profile.edges, production, side="right"), minlength=10)
        value = psi(profile.frequencies, counts)
        assert value == pytest.approx(reference_psi(profile.frequencies, counts), abs=1e-12)
        values.append(value)
    assert values[0] < 0.01 < values[1] < 0.25 < values[2]


def test_js_distance_bounds_and_known_value():
    assert js_distance([0.5, 0.5], [50, 50]) == pytest.approx(0.0, abs=1e-12)
    assert js_distance([1.0, 0.0], [0, 10]) == pytest.approx(1.0)
    # JS divergence (base 2) of [1,0] vs [0.5,0.5]: 0.5*KL(p||m) + 0.5*KL(q||m), m=[0.75,0.25]
    p, q, m = np.array([1.0, 0.0]), np.array([0.5, 0.5]), np.array([0.75, 0.25])
    kl = lambda x, y: float(np.sum([xi * math.log2(xi / yi) for xi, yi in zip(x, y, strict=True) if xi > 0]))  # noqa: E731
    assert js_distance([1.0, 0.0], [5, 5]) == pytest.approx(math.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)), abs=1e-12)


def test_js_distance_matches_scipy_and_is_never_nan():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p, q = rng.random(7), rng.integers(0, 50, 7)
        assert js_distance(p, q) == pytest.approx(float(jensenshannon(p / p.sum(), q / q.sum(), base=2)), abs=1e-12)
    same = [0.1, 0.2, 0.3, 0.4]
    assert js_distance(same, [10, 20, 30, 40]) == pytest.approx(0.0, abs=1e-7)
    assert not math.isnan(js_distance([1 / 3] * 3, [7, 7, 7]))


def test_chi2_matches_scipy():
    expected = [0.5, 0.3, 0.2]
    counts = [60, 20, 20]
    assert chi2_pvalue(expected, counts) == pytest.approx(chisquare(counts, f_exp=[50, 30, 20]).pvalue, rel=1e-6)
    assert chi2_pvalue(expected, [500, 300, 200]) == pytest.approx(1.0)


def test_categorical_profile_keeps_top_k_and_other():
    series = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 10)
    profile = feature_profile("cat", series, top_k=2)
    assert profile.kind == "categorical"
    assert profile.categories == ["a", "b"]
    assert profile.frequencies == pytest.approx([0.5, 0.3, 0.2])
    assert profile.bin_labels == ["a", "b", "(other)"]


def test_profile_build_numeric_and_boolean_columns():
    frame = pd.DataFrame({"n": [1, 1, 1, 1, 2, 3, 4, 5, 6, 7], "flag": [True] * 7 + [False] * 3})
    profile = profile_build(frame, model_name="m", model_version="3", bins=4)
    n, flag = profile.features
    assert n.kind == "numeric" and sum(n.frequencies) == pytest.approx(1.0) and n.edges[0] > 1
    assert flag.kind == "categorical" and flag.categories == ["true", "false"]
    assert profile.to_json()["rows"] == 10
