"""Robustness of a trained detector to perturbations of the raw photo (before feature extraction).

Each perturbation (:data:`DEFAULT_PERTURBATIONS`: JPEG quality 95/75/50, Gaussian blur sigma 1/2,
downscale x0.5 and back) is applied to the decoded raw photo of every test image; the result then
goes through the SAME in-memory feature pipeline as ``predict --raw`` (the checkpoint's recorded
segmentation -> LNP, :class:`dfig.stages.predict.FeaturePipeline`) and the detector. The ``none`` row uses
the same in-memory path without a perturbation, so every row is comparable. The perturbation
functions are :data:`dfig.data.transforms.PERTURBATIONS`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: (name, kind, level): kind is a key of dfig.data.transforms.PERTURBATIONS, or None for the reference
DEFAULT_PERTURBATIONS: tuple[tuple[str, str | None, float | None], ...] = (
    ("none", None, None),
    ("jpeg_q95", "jpeg", 95),
    ("jpeg_q75", "jpeg", 75),
    ("jpeg_q50", "jpeg", 50),
    ("blur_s1", "blur", 1.0),
    ("blur_s2", "blur", 2.0),
    ("downscale_0.5", "downscale", 0.5),
)


def _perturbed_reader(pipeline: Any, kind: str | None, level: float | None) -> Any:
    from dfig.data.images import load_rgb
    from dfig.data.transforms import perturb

    def read(path: str | os.PathLike[str]) -> Any:
        img = load_rgb(path)
        if kind is not None:
            img = perturb(img, kind, float(level))
        return pipeline.from_rgb(np.asarray(img))

    return read


def _readable_samples(raw_root: Any, split: str, limit: int | None, policy: str, report: Any) -> list[Any]:
    """The split's samples whose files decode (the first ``limit`` of each class when set).

    Bad files go to ``report``, or raise, per ``policy`` (:func:`dfig.data.images.check_files`).
    """
    from dfig.data.images import check_files
    from dfig.data.layout import discover

    samples = discover(raw_root, splits=(split,))[split]
    if limit:
        samples = [s for lab in (0, 1) for s in [x for x in samples if x.label == lab][:limit]]
    good = set(check_files([s.path for s in samples], policy=policy, report=report))
    return [s for s in samples if s.path in good]


def _scores(y: np.ndarray, p: np.ndarray, thr: float, n_boot: int, seed: int) -> dict[str, Any]:
    """One row's numbers: ``n``, metrics at 0.5, accuracy at ``thr``, bootstrap bounds, mean score."""
    from dfig.core.metrics import bootstrap_ci, compute_metrics

    m = compute_metrics(y, p, 0.5)
    row: dict[str, Any] = {"n": int(len(y))}
    row.update({k: float(m[k]) for k in ("acc", "real_acc", "fake_acc", "ap", "roc_auc", "eer")})
    row["acc_val_thr"] = float(compute_metrics(y, p, thr)["acc"])
    if n_boot:
        for metric in ("roc_auc", "ap"):
            _, lo, hi = bootstrap_ci(y, p, metric, n_boot=n_boot, seed=seed)
            row[f"{metric}_lo"], row[f"{metric}_hi"] = lo, hi
    row["mean_p_fake"] = float(p.mean())
    return row


def evaluate_robustness(
    model_path: str | os.PathLike[str],
    raw_root: str | os.PathLike[str],
    split: str = "test",
    perturbations: Sequence[tuple[str, str | None, float | None]] = DEFAULT_PERTURBATIONS,
    batch_size: int = 32,
    device: str = "cpu",
    n_boot: int = 1000,
    seed: int = 0,
    limit: int | None = None,
    policy: str = "skip",
    progress: bool = False,
) -> Any:
    """Metrics of the checkpoint on ``raw_root/<split>`` under each perturbation; one row each.

    Columns: ``perturbation, kind, level, n, acc, real_acc, fake_acc, ap, roc_auc, eer`` (at 0.5),
    ``acc_val_thr`` (at the checkpoint's validation threshold), ``roc_auc_lo/hi`` and ``ap_lo/hi``
    (95 % stratified bootstrap, ``n_boot`` resamples; ``n_boot=0`` skips them).
    ``limit``: use the first ``limit`` images of each class (quick looks). ``df.attrs`` holds
    ``reference_scores`` (path, label, p_fake of the unperturbed row, for comparison with the feature
    files' predictions) and ``n_available`` (images in the split before ``limit``).
    """
    import pandas as pd

    from dfig.data.layout import discover
    from dfig.progress import tqdm
    from dfig.runlog import RunReport
    from dfig.stages.predict import (
        build_feature_pipeline,
        inference_dataset,
        load_for_inference,
        score_dataset,
    )
    from dfig.stages.train import region_reader

    model, ck, opts = load_for_inference(model_path, device=device)
    thr = float(ck.get("threshold", 0.5))
    pipeline = build_feature_pipeline(ck.get("features"), device=str(device))
    report = RunReport("robustness")
    samples = _readable_samples(raw_root, split, limit, policy, report)
    rows, reference = [], None
    for name, kind, level in tqdm(list(perturbations), desc="perturbations", disable=not progress):
        ds = inference_dataset(
            samples, opts, region_reader(_perturbed_reader(pipeline, kind, level), opts.center_region), policy
        )
        p, idx = score_dataset(model, ds, opts, batch_size, str(device), progress)
        y = np.array([samples[i].label for i in idx])
        rows.append(
            {"perturbation": name, "kind": kind or "none", "level": level, **_scores(y, p, thr, n_boot, seed)}
        )
        if kind is None:
            reference = pd.DataFrame({"path": [str(samples[i].path) for i in idx], "label": y, "p_fake": p})
    df = pd.DataFrame(rows)
    df.attrs.update(
        model_path=str(Path(model_path)),
        raw_root=str(raw_root),
        split=split,
        pipeline=pipeline.describe(),
        skipped=list(report.failed),
        threshold=thr,
        n_available=len(discover(raw_root, splits=(split,))[split]),
    )
    if reference is not None:
        df.attrs["reference_scores"] = reference  # per-image scores of the unperturbed row
    return df


__all__ = ["DEFAULT_PERTURBATIONS", "evaluate_robustness"]
