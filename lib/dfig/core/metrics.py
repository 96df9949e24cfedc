"""Detection metrics (scikit-learn): accuracy, real/fake accuracy, AP, ROC-AUC, EER, bootstrap intervals.

Conventions: label 1 = fake, 0 = real; ``p_fake`` is the predicted probability of fake; an image is
called fake when ``p_fake > threshold`` (strictly, as CNNDetection's ``y_pred > 0.5``). Threshold-free
metrics (AP, ROC-AUC, EER) are NaN when only one class is present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, auc, average_precision_score, roc_auc_score, roc_curve

from dfig.progress import tqdm

CRITERIA = ("acc", "eer")


def _arrays(y_true: Any, p_fake: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(p_fake, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} entries but p_fake has {p.size}")
    if y.size == 0:
        raise ValueError("no predictions: y_true and p_fake are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(
            f"labels must be 0 (real) or 1 (fake); found {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}"
        )
    if not np.isfinite(p).all():
        raise ValueError(f"p_fake holds {int((~np.isfinite(p)).sum())} non-finite value(s)")
    return y.astype(np.int64), p


def _both_classes(y: np.ndarray) -> bool:
    return bool((y == 0).any() and (y == 1).any())


def _acc_subset(y: np.ndarray, pred: np.ndarray, cls: int) -> float:
    sel = y == cls
    return float(accuracy_score(y[sel], pred[sel])) if sel.any() else float("nan")


def eer(y_true: Any, p_fake: Any) -> float:
    """Equal error rate from :func:`sklearn.metrics.roc_curve`, interpolated where FPR = FNR."""
    y, p = _arrays(y_true, p_fake)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(_eer_point(fpr, tpr)[0])


def _eer_point(fpr: np.ndarray, tpr: np.ndarray) -> tuple[float, int]:
    """(EER, index of the ROC point nearest to the crossing) for ROC arrays ordered by falling threshold."""
    diff = (1.0 - tpr) - fpr  # FNR - FPR: falls from 1 to -1
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float(fpr[0]), 0
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    value = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    nearest = i if abs(d1) <= abs(d0) else i - 1
    return float(value), nearest


def _real_acc(y: np.ndarray, p: np.ndarray, thr: float) -> float:
    return _acc_subset(y, (p > thr).astype(np.int64), 0)


def _fake_acc(y: np.ndarray, p: np.ndarray, thr: float) -> float:
    return _acc_subset(y, (p > thr).astype(np.int64), 1)


def _ap(y: np.ndarray, p: np.ndarray, thr: float) -> float:
    return float(average_precision_score(y, p)) if _both_classes(y) else float("nan")


def _auc(y: np.ndarray, p: np.ndarray, thr: float) -> float:
    return float(roc_auc_score(y, p)) if _both_classes(y) else float("nan")


def _eer(y: np.ndarray, p: np.ndarray, thr: float) -> float:
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return _eer_point(fpr, tpr)[0]


METRICS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "acc": lambda y, p, thr: float(accuracy_score(y, (p > thr).astype(np.int64))),
    "real_acc": _real_acc,
    "fake_acc": _fake_acc,
    "ap": _ap,
    "roc_auc": _auc,
    "eer": _eer,
}


def compute_metrics(y_true: Any, p_fake: Any, threshold: float = 0.5) -> dict[str, float | int]:
    """``acc, real_acc, fake_acc`` (at ``threshold``), ``ap, roc_auc, eer``, ``n, n_real, n_fake, threshold``."""
    y, p = _arrays(y_true, p_fake)
    out: dict[str, float | int] = {name: fn(y, p, threshold) for name, fn in METRICS.items()}
    out.update(
        n=int(y.size), n_real=int((y == 0).sum()), n_fake=int((y == 1).sum()), threshold=float(threshold)
    )
    return out


def _strict_threshold(thresholds: np.ndarray, k: int, p: np.ndarray) -> float:
    """Turn roc_curve's ``p >= thresholds[k]`` into the equivalent ``p > t``."""
    if k == 0:  # thresholds[0] = inf: nothing called fake
        return float(p.max())
    if k + 1 < len(thresholds):
        return float((thresholds[k] + thresholds[k + 1]) / 2)
    return float(np.nextafter(thresholds[k], -np.inf))


def choose_threshold(y_val: Any, p_val: Any, criterion: str = "acc") -> float:
    """Threshold ``t`` (images with ``p > t`` are fake) chosen on validation predictions.

    ``"acc"``: maximises validation accuracy (ties: the one closest to 0.5); ``"eer"``: the ROC
    point where false-positive and false-negative rates are closest.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")
    y, p = _arrays(y_val, p_val)
    if not _both_classes(y):
        raise ValueError("choose_threshold needs validation predictions of both classes")
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    if criterion == "eer":
        return _strict_threshold(thr, _eer_point(fpr, tpr)[1], p)
    n_fake, n_real = int((y == 1).sum()), int((y == 0).sum())
    acc = (tpr * n_fake + (1.0 - fpr) * n_real) / y.size
    best = np.flatnonzero(np.isclose(acc, acc.max(), rtol=0, atol=1e-12))
    cands = np.array([_strict_threshold(thr, int(k), p) for k in best])
    return float(cands[np.argmin(np.abs(cands - 0.5))])


def _values(y: np.ndarray, p: np.ndarray, threshold: float, names: Sequence[str]) -> dict[str, float]:
    """The :data:`METRICS` in ``names``; ROC-AUC and EER share one ``roc_curve`` (same values, less time)."""
    shared = {"roc_auc", "eer"} & set(names)
    out: dict[str, float] = {}
    if len(shared) == 2:
        if _both_classes(y):
            fpr, tpr, _ = roc_curve(y, p)
            out["roc_auc"], out["eer"] = float(auc(fpr, tpr)), _eer_point(fpr, tpr)[0]
        else:
            out["roc_auc"] = out["eer"] = float("nan")
    for m in names:
        if m not in out:
            out[m] = METRICS[m](y, p, threshold)
    return out


def _bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    fn: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    n_boot: int,
    seed: int,
    alpha: float,
    progress: bool,
) -> dict[str, tuple[float, float]]:
    """Stratified percentile bootstrap of the metrics ``fn`` returns (one dict per resample): ``{name: (low, high)}``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    groups = [g for g in (np.flatnonzero(y == 0), np.flatnonzero(y == 1)) if g.size]
    values: dict[str, list[float]] = {}
    for _ in tqdm(range(n_boot), desc="bootstrap", disable=not progress):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        for k, v in fn(y[idx], p[idx]).items():
            lst = values.setdefault(k, [])
            if np.isfinite(v):  # skip degenerate resamples
                lst.append(float(v))
    out = {}
    for k, vs in values.items():
        if vs:
            lo, hi = np.quantile(vs, [alpha / 2, 1 - alpha / 2])
            out[k] = (float(lo), float(hi))
        else:
            out[k] = (float("nan"), float("nan"))
    return out


def _metric_fn(
    metric: str | Callable[[np.ndarray, np.ndarray], float], threshold: float
) -> Callable[[np.ndarray, np.ndarray], float]:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)} or pass a callable")
    fn = METRICS[metric]
    return lambda yy, pp: fn(yy, pp, threshold)


def bootstrap_ci(
    y_true: Any,
    p_fake: Any,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "roc_auc",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    threshold: float = 0.5,
    progress: bool = False,
) -> tuple[float, float, float]:
    """``(point, low, high)``: percentile bootstrap interval of ``metric`` at level ``1 - alpha``.

    Stratified: reals and fakes are resampled separately (with replacement), so each resample keeps
    the class counts; resamples where the metric is NaN are skipped. ``metric`` is a :data:`METRICS`
    name (threshold-based ones use ``threshold``) or a callable ``(y, p) -> float``. Reproducible
    for a given ``seed``.
    """
    y, p = _arrays(y_true, p_fake)
    fn = _metric_fn(metric, threshold)
    lo, hi = _bootstrap(y, p, lambda yy, pp: {"m": fn(yy, pp)}, n_boot, seed, alpha, progress)["m"]
    return float(fn(y, p)), lo, hi


DEFAULT_CI_METRICS = ("acc", "real_acc", "fake_acc", "ap", "roc_auc", "eer")


def metrics_with_ci(
    y_true: Any,
    p_fake: Any,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    metrics: Sequence[str] = DEFAULT_CI_METRICS,
    progress: bool = False,
) -> dict[str, float | int]:
    """:func:`compute_metrics` plus ``<m>_lo`` and ``<m>_hi`` bootstrap bounds for each of ``metrics``.

    All metrics share the same resamples (one stratified bootstrap, ``seed``); also ``n_boot`` and ``alpha``.
    """
    y, p = _arrays(y_true, p_fake)
    out: dict[str, float | int] = dict(compute_metrics(y, p, threshold))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}")
    ci = _bootstrap(y, p, lambda yy, pp: _values(yy, pp, threshold, metrics), n_boot, seed, alpha, progress)
    for m, (lo, hi) in ci.items():
        out[f"{m}_lo"], out[f"{m}_hi"] = lo, hi
    out["n_boot"], out["alpha"] = int(n_boot), float(alpha)
    return out


__all__ = [
    "CRITERIA",
    "DEFAULT_CI_METRICS",
    "METRICS",
    "bootstrap_ci",
    "choose_threshold",
    "compute_metrics",
    "eer",
    "metrics_with_ci",
]
