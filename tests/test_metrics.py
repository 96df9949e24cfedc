"""dfig.core.metrics: known predictions give known metrics; thresholds; reproducible bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dfig.core.metrics import METRICS, bootstrap_ci, choose_threshold, compute_metrics, eer, metrics_with_ci

Y = np.array([0] * 50 + [1] * 50)


def test_perfect_predictions():
    p = np.where(Y == 1, 0.9, 0.1)
    m = compute_metrics(Y, p)
    assert m["acc"] == m["real_acc"] == m["fake_acc"] == m["ap"] == m["roc_auc"] == 1.0
    assert m["eer"] == 0.0
    assert (m["n"], m["n_real"], m["n_fake"], m["threshold"]) == (100, 50, 50, 0.5)


def test_inverse_predictions():
    m = compute_metrics(Y, np.where(Y == 1, 0.1, 0.9))
    assert m["acc"] == m["real_acc"] == m["fake_acc"] == m["roc_auc"] == 0.0
    assert m["eer"] == 1.0
    assert m["ap"] == pytest.approx(0.5)  # AP of the worst ranking = prevalence here


def test_random_predictions_are_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20000)
    p = rng.random(20000)
    m = compute_metrics(y, p)
    for k in ("acc", "real_acc", "fake_acc", "ap", "roc_auc", "eer"):
        assert m[k] == pytest.approx(0.5, abs=0.02), k


def test_threshold_rule_and_class_accuracies():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.2, 0.5, 0.7, 0.5, 0.9])
    m = compute_metrics(y, p)  # fake when p > 0.5 (strict, as CNNDetection)
    assert m["real_acc"] == pytest.approx(2 / 3) and m["fake_acc"] == 0.5 and m["acc"] == pytest.approx(3 / 5)
    m = compute_metrics(y, p, threshold=0.4)
    assert m["real_acc"] == pytest.approx(1 / 3) and m["fake_acc"] == 1.0 and m["threshold"] == 0.4


def test_eer_interpolates_where_fpr_equals_fnr():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])  # one real above one fake
    assert eer(y, p) == pytest.approx(0.25)
    assert math.isnan(eer(np.zeros(4), np.random.default_rng(0).random(4)))


def test_one_class_gives_nan_for_ranking_metrics():
    m = compute_metrics(np.ones(5), np.full(5, 0.8))
    assert m["acc"] == 1.0 and m["fake_acc"] == 1.0
    assert (
        math.isnan(m["real_acc"])
        and math.isnan(m["roc_auc"])
        and math.isnan(m["ap"])
        and math.isnan(m["eer"])
    )


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="entries"):
        compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="labels"):
        compute_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="non-finite"):
        compute_metrics([0, 1], [0.5, np.nan])


def test_choose_threshold():
    # scores shifted: every fake above 0.6, every real below 0.6 -> the 0.5 rule misclassifies reals
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.30, 0.55, 0.58, 0.62, 0.8, 0.9])
    t = choose_threshold(y, p, "acc")
    assert 0.58 <= t < 0.62
    assert compute_metrics(y, p, t)["acc"] == 1.0
    assert compute_metrics(y, p)["acc"] < 1.0
    te = choose_threshold(y, p, "eer")
    assert 0.58 <= te < 0.62
    # the chosen threshold gives the best accuracy any threshold gives
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    t = choose_threshold(y, p)
    best = max(float(np.mean((p > c) == y)) for c in np.linspace(-0.01, 1.01, 2001))
    assert compute_metrics(y, p, t)["acc"] == pytest.approx(best)
    with pytest.raises(ValueError, match="criterion"):
        choose_threshold(y, p, "f1")
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.ones(3), [0.2, 0.4, 0.6])


def _noisy(n: int = 200, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    return y, np.clip(0.25 * y + 0.75 * rng.random(n), 0, 1)


def test_bootstrap_contains_point_and_is_reproducible():
    y, p = _noisy()
    point, lo, hi = bootstrap_ci(y, p, "roc_auc", n_boot=150, seed=5)
    assert point == pytest.approx(roc_auc_score(y, p))
    assert lo < point < hi and 0 < hi - lo < 0.3
    assert bootstrap_ci(y, p, "roc_auc", n_boot=150, seed=5) == (point, lo, hi)
    assert bootstrap_ci(y, p, "roc_auc", n_boot=150, seed=6) != (point, lo, hi)
    # wider at 99 % than at 80 %
    _, lo99, hi99 = bootstrap_ci(y, p, "roc_auc", n_boot=150, seed=5, alpha=0.01)
    _, lo80, hi80 = bootstrap_ci(y, p, "roc_auc", n_boot=150, seed=5, alpha=0.2)
    assert lo99 <= lo80 and hi80 <= hi99
    # a callable metric and a threshold metric
    pt, lo, hi = bootstrap_ci(y, p, lambda a, b: float(np.mean(b[a == 1])), n_boot=100)
    assert lo <= pt <= hi
    pt, lo, hi = bootstrap_ci(y, p, "acc", n_boot=100, threshold=0.6)
    assert pt == compute_metrics(y, p, 0.6)["acc"] and lo <= pt <= hi
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, p, "f1")


def test_bootstrap_is_stratified_and_skips_degenerate_resamples():
    y, p = _noisy(40)
    seen = []

    def counts(a: np.ndarray, b: np.ndarray) -> float:
        seen.append(int(a.sum()))
        return float("nan") if len(seen) % 2 else 1.0  # every other resample is "degenerate"

    point, lo, hi = bootstrap_ci(y, p, counts, n_boot=20)
    assert set(seen) == {20}  # every resample keeps 20 fakes out of 40
    assert (lo, hi) == (1.0, 1.0)  # only the finite resamples count


def test_metrics_with_ci():
    y, p = _noisy()
    m = metrics_with_ci(y, p, threshold=0.5, n_boot=100, seed=0)
    base = compute_metrics(y, p, 0.5)
    for k in METRICS:
        assert m[k] == base[k]
        assert m[f"{k}_lo"] <= m[k] <= m[f"{k}_hi"], k
    assert m["n_boot"] == 100 and m["alpha"] == 0.05
    assert metrics_with_ci(y, p, n_boot=100, seed=0) == m
