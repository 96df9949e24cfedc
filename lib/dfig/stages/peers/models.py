"""The classical peers (:data:`PEERS`): fitting with validation-chosen hyper-parameters, and scoring.

See :mod:`dfig.stages.peers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dfig.runlog import RunReport
from dfig.stages.peers.features import sample_features


def _logreg(seed: int, C: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, random_state=seed))


def _hgb(seed: int, learning_rate: float, max_leaf_nodes: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        max_iter=200,
        early_stopping=False,
        random_state=seed,
    )


@dataclass(frozen=True)
class Peer:
    """A peer: feature ``kind`` (+ ``feature_kw``), ``model`` name, ``make(seed, **params)`` -> an
    unfitted scikit-learn classifier, and ``grid``: the candidate ``params``, tried in order (ties: the first).
    ``source``: ``features`` (the DFIG run's feature tree, e.g. the LNP) or ``photos`` (the raw photos of the
    same splits: the method works on the image itself)."""

    kind: str
    model: str
    make: Callable[..., Any]
    grid: tuple[dict[str, Any], ...]
    feature_kw: dict[str, Any] = field(default_factory=dict)
    source: str = "features"


_C_GRID = tuple({"C": float(c)} for c in 10.0 ** np.arange(-4, 3))
_HGB_GRID = tuple({"learning_rate": lr, "max_leaf_nodes": n} for lr in (0.05, 0.1) for n in (7, 15))

#: name -> builder(**feature_kw) -> :class:`Peer`
PEERS: dict[str, Callable[..., Peer]] = {
    "logreg_spec2d": lambda **kw: Peer("spec2d", "logreg", _logreg, _C_GRID, kw),
    "logreg_spec1d": lambda **kw: Peer("spec1d", "logreg", _logreg, _C_GRID, kw),
    "hgb_stats": lambda **kw: Peer("stats", "hgb", _hgb, _HGB_GRID, kw),
    # Frank et al. 2020: log |DCT| of the grey photo, standardised per coefficient, logistic regression
    "logreg_dct": lambda **kw: Peer("dct", "logreg", _logreg, _C_GRID, kw, "photos"),
}


def build_peer(name: str, **feature_kw: Any) -> Peer:
    """The :class:`Peer` registered as ``name`` with ``feature_kw`` (``crop``, ``bins``, ``highpass``)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}")
    return PEERS[name](**feature_kw)


@dataclass
class FittedPeer:
    """A fitted peer: the estimator, the chosen params, every candidate's validation ROC-AUC, and the
    validation predictions (``y_val``, ``p_val``, ``val_samples``) it was chosen on."""

    name: str
    peer: Peer
    estimator: Any
    params: dict[str, Any]
    candidates: list[dict[str, Any]]
    y_val: np.ndarray
    p_val: np.ndarray
    val_samples: list[Any]
    reports: dict[str, RunReport]
    n_features: int


def _check_classes(y: np.ndarray, split: str) -> None:
    if not ((y == 0).any() and (y == 1).any()):
        raise ValueError(
            f"the {split} split has no usable images of both classes (real and fake): a peer "
            "needs both; add images or fix the bad files"
        )


def fit_peer(
    name: str,
    train_samples: Sequence[Any],
    val_samples: Sequence[Any],
    reader: Callable[[Any], np.ndarray] | None = None,
    seed: int = 0,
    policy: str = "skip",
    progress: bool = False,
    **feature_kw: Any,
) -> FittedPeer:
    """Fit peer ``name`` on ``train_samples``; choose its hyper-parameters on ``val_samples`` (ROC-AUC).

    Arguments: ``reader``/``policy``/``progress`` as :func:`sample_features`; ``seed`` the model seed;
    ``feature_kw`` (``crop``, ``bins``, ``highpass``) as :func:`feature_vector`. Reads only the two
    splits given (never test). Returns a :class:`FittedPeer`; the final model is the candidate fitted on
    train with the best validation AUC (not refitted on train+val: val also sets the threshold).
    """
    from sklearn.metrics import roc_auc_score

    peer = build_peer(name, **feature_kw)
    Xtr, ytr, _, rtr = sample_features(peer.kind, train_samples, reader, policy, progress, **peer.feature_kw)
    Xva, yva, kept_va, rva = sample_features(
        peer.kind, val_samples, reader, policy, progress, **peer.feature_kw
    )
    _check_classes(ytr, "train")
    _check_classes(yva, "val")
    best, cands = None, []
    for params in peer.grid:
        est = peer.make(seed, **params).fit(Xtr, ytr)
        p = est.predict_proba(Xva)[:, 1]
        auc = float(roc_auc_score(yva, p))
        cands.append({**params, "val_auc": auc})
        if best is None or auc > best[0]:
            best = (auc, params, est, p)
    assert best is not None
    return FittedPeer(
        name,
        peer,
        best[2],
        dict(best[1]),
        cands,
        yva,
        best[3],
        kept_va,
        {"train": rtr, "val": rva},
        int(Xtr.shape[1]),
    )


def evaluate_peer(
    fitted: FittedPeer,
    samples: Sequence[Any],
    reader: Callable[[Any], np.ndarray] | None = None,
    policy: str = "skip",
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[Any], RunReport]:
    """Scores of a fitted peer on ``samples`` (e.g. the test split).

    Arguments: as :func:`sample_features`. Returns ``(y, p_fake, kept samples, report)``.
    """
    X, y, kept, rep = sample_features(
        fitted.peer.kind, samples, reader, policy, progress, **fitted.peer.feature_kw
    )
    if not len(kept):
        raise ValueError("no usable images to evaluate the peer on (all were bad files)")
    return y, fitted.estimator.predict_proba(X)[:, 1], kept, rep


__all__ = ["FittedPeer", "PEERS", "Peer", "build_peer", "evaluate_peer", "fit_peer"]
