"""A whole peer run, written as the training runs are (``metrics/peer_<name>.json`` + predictions).

See :mod:`dfig.stages.peers`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dfig import io, paths
from dfig.stages.peers.models import build_peer, evaluate_peer, fit_peer


def _write_predictions(
    dest: Path, samples: Sequence[Any], y: np.ndarray, p: np.ndarray, record: bool
) -> Path:
    from dfig.io import predictions_frame

    io.save_predictions_csv(predictions_frame(samples, y, p, 0.5), dest)  # paths portable
    if record:
        io.record_provenance(dest)
    return dest


def save_fitted(fitted: Any, thr: float, dest: Path) -> Path:
    """Write a fitted peer (estimator, feature kind and options, input source, threshold) with joblib,
    atomically, so that later tests (e.g. other generators' folders) score with the same model.

    Arguments: ``fitted`` a :class:`~dfig.stages.peers.models.FittedPeer`; ``thr`` its val threshold;
    ``dest`` the file. Returns ``dest``; :func:`load_fitted` reads it back.
    """
    import joblib

    blob = {
        "name": fitted.name,
        "kind": fitted.peer.kind,
        "feature_kw": dict(fitted.peer.feature_kw),
        "source": fitted.peer.source,
        "estimator": fitted.estimator,
        "threshold": float(thr),
    }
    with io.atomic_path(dest) as tmp:
        joblib.dump(blob, tmp)
    return dest


def load_fitted(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A peer written by :func:`save_fitted` (our own file: joblib/pickle, never a downloaded one)."""
    import joblib

    return dict(joblib.load(path))


def score_arrays(blob: dict[str, Any], arrays: Sequence[np.ndarray]) -> np.ndarray:
    """P(fake) of a saved peer (:func:`load_fitted`) on images/LNPs given as HxWx3 arrays."""
    from dfig.stages.peers.features import features

    X = features(blob["kind"], list(arrays), **blob["feature_kw"])
    return blob["estimator"].predict_proba(X)[:, 1]


def _input_record(root: Path) -> dict[str, Any]:
    meta = io.read_stage_meta(root)
    keep = ("stage", "method", "denoiser", "save_mode", "synthetic", "precision")
    return {k: meta[k] for k in keep if k in meta}


def _peer_record(name: str, fitted: Any, thr: float, seed: int, minutes: float, root: Path) -> dict[str, Any]:
    """What a peer run is: the keys of ``train_<run>.json`` that describe the model, its choice and input."""
    return {
        "name": f"peer_{name}",
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
        "train_minutes": minutes,
        "seed": seed,
        "pretrained_used": "none (classical peer)",
        "dataroot": paths.rel(root),
        "input_stage": _input_record(root),
    }


def _scores_record(
    fitted: Any, y: np.ndarray, p: np.ndarray, thr: float, reports: dict[str, Any], seed: int, n_boot: int
) -> dict[str, Any]:
    """How a peer run scored: val/test metrics with intervals, test at the val threshold, skipped files."""
    from dfig.core.metrics import compute_metrics, metrics_with_ci

    return {
        "val_metrics": metrics_with_ci(fitted.y_val, fitted.p_val, 0.5, n_boot=n_boot, seed=seed),
        "test_metrics": metrics_with_ci(y, p, 0.5, n_boot=n_boot, seed=seed),
        "test_metrics_at_val_threshold": compute_metrics(y, p, thr),
        "data_report": {k: {**r.to_dict(), "stage": f"peer features {k}"} for k, r in reports.items()},
        "skipped_files": sum(len(r.failed) for r in reports.values()),
    }


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
    from dfig.core.metrics import choose_threshold
    from dfig.data.splits import split_samples

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
    minutes = (time.time() - t0) / 60
    model = (paths.checkpoints_dir() if out is None else base / "checkpoints") / run / "peer.joblib"
    meta = {
        **_peer_record(name, fitted, thr, seed, minutes, root),
        **_scores_record(fitted, y, p, thr, reports, seed, n_boot),
        "predictions": {k: v.name for k, v in pred.items()},
        "model_path": paths.rel(save_fitted(fitted, thr, model)),
    }
    if record:
        io.save_metrics(meta, run)
    else:
        io.save_json(meta, base / "metrics" / f"{run}.json", portable=True)
    return meta


def options_like(train_meta: dict[str, Any]) -> dict[str, Any]:
    """The peers' feature options that match a DFIG training run (its ``train_<run>.json``).

    Arguments: ``train_meta`` the run's metrics dict (with ``options`` and ``features``). Returns
    ``{"crop", "highpass"}``: the run's ``center_region`` when it set one, else the central view it
    validates and tests on (``eval_crop_size`` or ``crop_size``; ``None`` with ``no_crop``); ``highpass`` for an image tree
    (the RGB baseline's ``faces``), not for an LNP tree.
    """
    opts = train_meta.get("options") or {}
    view = opts.get("eval_crop_size") or opts.get("crop_size") or opts.get("cropSize")  # cropSize: old runs
    crop = opts.get("center_region") or (None if opts.get("no_crop") else view)
    return {
        "crop": int(crop) if crop else None,
        "highpass": not str(train_meta.get("features", "lnp")).startswith("lnp"),
    }


def run_peers_like(
    names: Sequence[str],
    train_meta: dict[str, Any],
    feature_root: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    progress: bool = True,
    photo_root: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Run the peers ``names`` on the feature tree, classes and central region of a DFIG run.

    Arguments: ``train_meta`` that run's ``train_<run>.json`` (:func:`options_like`, ``options.classes``);
    ``feature_root`` its feature tree (``work/<profile>/<features>``); ``photo_root`` the raw photos of the
    same splits, read by the peers whose ``source`` is ``photos`` (``logreg_dct``); the rest as
    :func:`run_peer`. Returns the metrics dicts written, one per peer (unknown names, or a photo peer
    without ``photo_root``, fail before any work).
    """
    sources = {n: build_peer(n).source for n in names}
    if photo_root is None and "photos" in sources.values():
        raise ValueError(
            f"peers {[n for n, s in sources.items() if s == 'photos']} read the raw photos: pass photo_root"
        )
    kw = options_like(train_meta)
    classes = str((train_meta.get("options") or {}).get("classes") or "")
    return [
        run_peer(
            n,
            photo_root if sources[n] == "photos" else feature_root,
            out,
            classes,
            seed,
            n_boot,
            progress=progress,
            **kw,
        )
        for n in names
    ]


__all__ = ["load_fitted", "options_like", "run_peer", "run_peers_like", "save_fitted", "score_arrays"]
