"""Classical peers beside DFIG: cheap, well-known detectors on the same splits, with the same metrics.

GAN-image forensics has strong cheap baselines; these run on the feature tree a DFIG run trains on
(an LNP tree written by ``dfig.stages.lnp``, or any ``{train,val,test}/{real,fake}`` image tree with
``highpass=True``), crop the same central face region as training's ``center_region`` and report as
the training runs do (``metrics/peer_<name>.json``, ``predictions/peer_<name>_{val,test}.csv``):

- ``logreg_spec2d``: logistic regression (standardised features, L2) on the 2-D log power spectrum of
  the grey-level residual, average-pooled to ``bins x bins`` (Dzanic et al. 2020; the linear probe of
  docs/experiments_sample.md);
- ``logreg_spec1d``: the same on the azimuthally averaged 1-D log spectrum (Durall et al. 2020);
- ``hgb_stats``: scikit-learn's ``HistGradientBoostingClassifier`` on residual statistics
  (per-channel moments and kurtosis, cross-channel correlations, high-frequency energy ratios).

Hyper-parameters (``C``; learning rate and leaves) are chosen by validation ROC-AUC; the decision
threshold by validation accuracy (:func:`dfig.core.metrics.choose_threshold`). The test split is read only
after the model is fixed, by :func:`evaluate_peer`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dfig import io, paths
from dfig.runlog import RunReport

#: feature kinds of :func:`features`
FEATURE_KINDS: tuple[str, ...] = ("spec2d", "spec1d", "stats")
#: default side of the central region kept before the features (px; as ``--center_region`` in training)
DEFAULT_CROP = 128
#: default pooled size of the 2-D spectrum and number of radial bins of the 1-D spectrum
DEFAULT_BINS = {"spec2d": 32, "spec1d": 32}
_EPS = 1e-12


# ---------------------------------------------------------------------------------------------
# features


def center_crop_array(img: np.ndarray, size: int | None) -> np.ndarray:
    """The central ``size x size`` region of an HxWxC array, as training's ``dfig.stages.train.center_region``.

    Arguments: ``img`` HxWxC array; ``size`` side in px (``None``/0: unchanged). Returns the region;
    an image smaller than ``size`` on either side passes unchanged (as in training).
    """
    from dfig.stages.train import center_region

    return np.asarray(center_region(np.asarray(img), size))


def residual_of(img: np.ndarray, highpass: bool = False, sigma: float = 1.0) -> np.ndarray:
    """The residual the features are computed on, float64 HxWx3, zero mean per channel.

    Arguments: ``img`` HxWx3 (an LNP as :func:`dfig.stages.lnp.read_lnp` returns it, or an image in [0, 1]);
    ``highpass`` subtract a Gaussian blur (``sigma`` px) first (for raw image trees). Returns the residual.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if highpass:
        from scipy.ndimage import gaussian_filter

        x = x - gaussian_filter(x, sigma=(sigma, sigma, 0), mode="reflect")
    return x - x.mean(axis=(0, 1), keepdims=True)


def log_power(grey: np.ndarray) -> np.ndarray:
    """Centred (``fftshift``) 2-D log power spectrum ``log(|F|^2 + eps)`` of an HxW array."""
    f = np.fft.fftshift(np.fft.fft2(grey))
    return np.log(np.abs(f) ** 2 + _EPS)


def _pool2d(a: np.ndarray, bins: int) -> np.ndarray:
    h, w = a.shape
    if h < bins or w < bins:
        raise ValueError(
            f"a {h}x{w} crop is smaller than the {bins}x{bins} spectrum bins: use a larger crop or fewer bins"
        )
    rows = np.array_split(np.arange(h), bins)
    cols = np.array_split(np.arange(w), bins)
    r = np.add.reduceat(a, [i[0] for i in rows], axis=0) / np.array([len(i) for i in rows])[:, None]
    return np.add.reduceat(r, [j[0] for j in cols], axis=1) / np.array([len(j) for j in cols])[None, :]


def _radial(lp: np.ndarray, bins: int) -> np.ndarray:
    """Mean of the (centred) 2-D log spectrum over rings of normalised radius; empty rings interpolated."""
    h, w = lp.shape
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    r = np.hypot(fy, fx) / np.sqrt(0.5)  # 0 at DC, 1 at the corner (Nyquist on both axes)
    idx = np.minimum((r * bins).astype(int), bins - 1).ravel()
    s = np.bincount(idx, lp.ravel(), bins)
    n = np.bincount(idx, minlength=bins)
    centres = (np.arange(bins) + 0.5) / bins
    have = n > 0
    return np.interp(centres, centres[have], s[have] / n[have])


def _band_energy(grey: np.ndarray) -> list[float]:
    """Shares of the residual's power in radial bands and along the axes, and the Nyquist cross."""
    h, w = grey.shape
    p = np.abs(np.fft.fft2(grey)) ** 2
    p[0, 0] = 0.0
    total = p.sum() + _EPS
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    r = np.hypot(fy, fx) / 0.5
    bands = [
        float(p[(r >= a) & (r < b)].sum() / total)
        for a, b in ((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 2))
    ]
    axes = float((p[0, :].sum() + p[:, 0].sum()) / total)
    nyq = float((p[h // 2, :].sum() + p[:, w // 2].sum()) / total) if h > 1 and w > 1 else 0.0
    half = float(p[np.abs(fy) == 0.25].sum() / total + p[:, np.abs(fx[0]) == 0.25].sum() / total)
    return [*bands, axes, nyq, half]


def _stats(res: np.ndarray) -> np.ndarray:
    from scipy.stats import kurtosis, skew

    out: list[float] = []
    chans = [res[:, :, c].ravel() for c in range(res.shape[2])]
    for c in chans:
        sd = float(c.std())
        out += [
            sd,
            float(np.abs(c).mean()),
            float(skew(c)) if sd > 0 else 0.0,
            float(kurtosis(c)) if sd > 0 else 0.0,
            *np.percentile(c, [1, 99]).tolist(),
        ]
    for i in range(len(chans)):
        for j in range(i + 1, len(chans)):
            denom = chans[i].std() * chans[j].std()
            out.append(float((chans[i] * chans[j]).mean() / denom) if denom > 0 else 0.0)
    grey = res.mean(axis=2)
    lap = grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    out += [float(np.log(grey.var() + _EPS)), float(np.log(lap.var() + _EPS) - np.log(grey.var() + _EPS))]
    return np.asarray(out + _band_energy(grey))


def feature_vector(
    kind: str,
    img: np.ndarray,
    crop: int | None = DEFAULT_CROP,
    bins: int | None = None,
    highpass: bool = False,
) -> np.ndarray:
    """One image's feature vector.

    Arguments: ``kind`` one of :data:`FEATURE_KINDS`; ``img`` HxWx3 array; ``crop`` central region kept
    (:func:`center_crop_array`); ``bins`` spectrum bins (default :data:`DEFAULT_BINS`); ``highpass`` see
    :func:`residual_of`. Returns a 1-D float64 array whose length depends only on ``kind`` and ``bins``.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    res = residual_of(center_crop_array(img, crop), highpass=highpass)
    if kind == "stats":
        return _stats(res)
    lp = log_power(res.mean(axis=2))
    nb = int(bins or DEFAULT_BINS[kind])
    return _pool2d(lp, nb).ravel() if kind == "spec2d" else _radial(lp, nb)


def features(
    kind: str,
    arrays: Sequence[np.ndarray],
    crop: int | None = DEFAULT_CROP,
    bins: int | None = None,
    highpass: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Feature matrix (N x D) of ``arrays`` (each HxWx3); arguments as :func:`feature_vector`."""
    from tqdm.auto import tqdm

    rows = [
        feature_vector(kind, a, crop, bins, highpass)
        for a in tqdm(arrays, desc=f"features {kind}", disable=not progress)
    ]
    return np.stack(rows) if rows else np.zeros((0, 0))


def sample_features(
    kind: str,
    samples: Sequence[Any],
    reader: Callable[[Any], np.ndarray] | None = None,
    policy: str = "skip",
    progress: bool = False,
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray, list[Any], RunReport]:
    """Read ``samples`` (``dfig.data.layout.Sample``) and compute their features, skipping bad files.

    Arguments: ``reader`` path -> HxWx3 array (default :func:`dfig.stages.lnp.read_lnp`); ``policy`` ``skip``
    (bad files counted and named in the report) or ``strict`` (raise); ``kw`` as :func:`feature_vector`.
    Returns ``(X, y, kept samples, report)``.
    """
    from tqdm.auto import tqdm

    from dfig.data.images import BAD_FILE_POLICIES, BadImageError

    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    if reader is None:
        from dfig.stages.lnp import read_lnp as reader
    rep, rows, kept = RunReport(f"peer features {kind}"), [], []
    for s in tqdm(samples, desc=f"features {kind}", disable=not progress, unit="img"):
        try:
            arr = reader(s.path)
        except BadImageError as e:
            if policy == "strict":
                raise
            rep.fail(e.path, e.reason)
            continue
        rows.append(feature_vector(kind, arr, **kw))
        kept.append(s)
    rep.done = len(kept)
    X = np.stack(rows) if rows else np.zeros((0, 0))
    return X, np.array([s.label for s in kept], dtype=np.int64), kept, rep


# ---------------------------------------------------------------------------------------------
# the peers


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
    unfitted scikit-learn classifier, and ``grid``: the candidate ``params``, tried in order (ties: the first)."""

    kind: str
    model: str
    make: Callable[..., Any]
    grid: tuple[dict[str, Any], ...]
    feature_kw: dict[str, Any] = field(default_factory=dict)


_C_GRID = tuple({"C": float(c)} for c in 10.0 ** np.arange(-4, 3))
_HGB_GRID = tuple({"learning_rate": lr, "max_leaf_nodes": n} for lr in (0.05, 0.1) for n in (7, 15))

#: name -> builder(**feature_kw) -> :class:`Peer`
PEERS: dict[str, Callable[..., Peer]] = {
    "logreg_spec2d": lambda **kw: Peer("spec2d", "logreg", _logreg, _C_GRID, kw),
    "logreg_spec1d": lambda **kw: Peer("spec1d", "logreg", _logreg, _C_GRID, kw),
    "hgb_stats": lambda **kw: Peer("stats", "hgb", _hgb, _HGB_GRID, kw),
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


# ---------------------------------------------------------------------------------------------
# a whole run, written as the training runs are


def _write_predictions(
    dest: Path, samples: Sequence[Any], y: np.ndarray, p: np.ndarray, record: bool
) -> Path:
    from dfig.stages.train import predictions_frame

    io.save_predictions_csv(predictions_frame(samples, y, p, 0.5), dest)  # paths portable
    if record:
        io.record_provenance(dest)
    return dest


def _input_record(root: Path) -> dict[str, Any]:
    meta = io.read_stage_meta(root)
    keep = ("stage", "method", "denoiser", "save_mode", "synthetic", "precision")
    return {k: meta[k] for k in keep if k in meta}


def run_peer(
    name: str,
    feature_root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    classes: str = "",
    seed: int = 0,
    n_boot: int = 1000,
    policy: str = "skip",
    progress: bool = True,
    reader: Callable[[Any], np.ndarray] | None = None,
    **feature_kw: Any,
) -> dict[str, Any]:
    """Fit, choose and evaluate peer ``name`` on ``feature_root/{train,val,test}/{real,fake}``; write reports.

    Arguments: ``out`` the reports folder (default ``dfig.paths.reports_dir()`` of the current profile,
    with provenance); ``classes`` as ``dfig.stages.train --classes``; ``n_boot`` bootstrap resamples of the
    intervals (:func:`dfig.core.metrics.metrics_with_ci`); ``feature_kw`` as :func:`feature_vector`.
    Writes ``<out>/metrics/peer_<name>.json`` (keys as ``train_<run>.json``: ``name``, ``arch``,
    ``train_mode``, ``threshold``, ``epochs``, ``val_metrics``, ``test_metrics`` with ``_lo``/``_hi``, ...)
    and ``<out>/predictions/peer_<name>_{val,test}.csv`` (``path, label, p_fake, pred``).
    Returns the metrics dict written.
    """
    from dfig.core.metrics import choose_threshold, compute_metrics, metrics_with_ci
    from dfig.stages.train import split_samples

    t0 = time.time()
    root = Path(feature_root)
    samples = split_samples(root, classes)
    if "test" not in samples:
        raise FileNotFoundError(
            f"{root / 'test'}: no test split; a peer is reported on test like the training runs"
        )
    build_peer(name, **feature_kw)  # unknown name or options: fail before any work
    record = out is None
    base = paths.reports_dir() if out is None else Path(out)
    fitted = fit_peer(name, samples["train"], samples["val"], reader, seed, policy, progress, **feature_kw)
    thr = choose_threshold(fitted.y_val, fitted.p_val, "acc")
    y, p, kept, rte = evaluate_peer(fitted, samples["test"], reader, policy, progress)
    run = f"peer_{name}"
    pred = {
        "val": _write_predictions(
            base / "predictions" / f"{run}_val.csv", fitted.val_samples, fitted.y_val, fitted.p_val, record
        ),
        "test": _write_predictions(base / "predictions" / f"{run}_test.csv", kept, y, p, record),
    }
    reports = {**fitted.reports, "test": rte}
    meta = {
        "name": run,
        "peer": name,
        "arch": fitted.peer.model,
        "train_mode": "peer",
        "tag": "peer",
        "features": fitted.peer.kind,
        "feature_options": {**fitted.peer.feature_kw},
        "n_features": fitted.n_features,
        "params": fitted.params,
        "candidates": fitted.candidates,
        "selection": "hyper-parameters by val ROC-AUC; threshold by val accuracy; test read once, after",
        "threshold": thr,
        "epochs": "n/a",
        "train_minutes": (time.time() - t0) / 60,
        "seed": seed,
        "pretrained_used": "none (classical peer)",
        "dataroot": str(root),
        "input_stage": _input_record(root),
        "val_metrics": metrics_with_ci(fitted.y_val, fitted.p_val, 0.5, n_boot=n_boot, seed=seed),
        "test_metrics": metrics_with_ci(y, p, 0.5, n_boot=n_boot, seed=seed),
        "test_metrics_at_val_threshold": compute_metrics(y, p, thr),
        "data_report": {k: {**r.to_dict(), "stage": f"peer features {k}"} for k, r in reports.items()},
        "skipped_files": sum(len(r.failed) for r in reports.values()),
        "predictions": {k: v.name for k, v in pred.items()},
    }
    if record:
        io.save_metrics(meta, run)
    else:
        io.save_json(meta, base / "metrics" / f"{run}.json", portable=True)
    return meta


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m dfig.peers``."""
    ap = argparse.ArgumentParser(prog="python -m dfig.peers", description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, choices=list(PEERS), help="which peer")
    ap.add_argument("--dataroot", required=True, help="feature tree {train,val,test}/{real,fake}/* (LNPs)")
    ap.add_argument("--out", default=None, help="reports folder (default: reports/<profile>)")
    ap.add_argument("--classes", default="", help="as dfig.stages.train --classes")
    ap.add_argument(
        "--crop", type=int, default=DEFAULT_CROP, help="central region kept (px; 0 = whole image)"
    )
    ap.add_argument("--bins", type=int, default=None, help="spectrum bins (default 32)")
    ap.add_argument("--highpass", action="store_true", help="Gaussian high-pass first (raw image trees)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n_boot", type=int, default=1000)
    ap.add_argument("--policy", choices=("skip", "strict"), default="skip", help="bad input files")
    ap.add_argument("--no_progress", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.peers --name logreg_spec2d --dataroot LNPROOT [--out DIR]``; user errors exit 2."""
    from dfig.clierrors import USER_ERRORS, check_writable, fail, output_error

    a = build_parser().parse_args(argv)
    kw: dict[str, Any] = {"crop": a.crop or None, "highpass": a.highpass}
    if a.bins is not None and a.name != "hgb_stats":
        kw["bins"] = a.bins
    try:
        if a.out is not None:
            check_writable(a.out, "--out")
        res = run_peer(
            a.name, a.dataroot, a.out, a.classes, a.seed, a.n_boot, a.policy, not a.no_progress, **kw
        )
    except USER_ERRORS as e:
        return fail(output_error(e, a.out or paths.reports_dir(), "--out"))
    for split in ("val", "test"):
        m = res[f"{split}_metrics"]
        print(
            f"{res['name']} {split}: AUC {m['roc_auc']:.4f} [{m['roc_auc_lo']:.4f}, {m['roc_auc_hi']:.4f}], "
            f"AP {m['ap']:.4f}, acc {m['acc']:.4f}, n {m['n']}"
        )
    print(f"params {res['params']}, threshold {res['threshold']:.4f}, skipped files {res['skipped_files']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "FEATURE_KINDS",
    "DEFAULT_CROP",
    "DEFAULT_BINS",
    "PEERS",
    "Peer",
    "FittedPeer",
    "build_peer",
    "center_crop_array",
    "residual_of",
    "log_power",
    "feature_vector",
    "features",
    "sample_features",
    "fit_peer",
    "evaluate_peer",
    "run_peer",
    "build_parser",
    "main",
]
