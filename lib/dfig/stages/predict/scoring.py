"""Scoring a folder: labels from folders, the checkpoint's model and inference dataset, P(fake)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig.data.layout import CLASS_DIRS, IMAGE_EXTS, Sample, list_images
from dfig.stages.predict.pipeline import MAX_PIXELS, build_feature_pipeline
from dfig.stages.predict.screen import screen_inputs

INPUT_EXTS: tuple[str, ...] = (*IMAGE_EXTS, ".npy")


def label_of(path: Path, root: Path) -> int | None:
    """0/1 from the nearest ``real``/``fake`` (``0_real``/``1_fake``) folder between ``root`` and the file."""
    try:
        parts = path.resolve().relative_to(root.resolve()).parts[:-1]
    except ValueError:
        return None
    for name in reversed(parts):
        if name in CLASS_DIRS:
            return CLASS_DIRS[name]
    return None


def load_for_inference(
    model_path: str | os.PathLike[str],
    backbone: str | None = None,
    mode: int | str | None = None,
    device: str = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any], Any]:
    """``(model, checkpoint, TrainOptions)``; wrong ``backbone``/``mode`` -> error naming what the file holds."""
    from dfig.accel import resolve_device
    from dfig.stages.train import options_from_dict

    dev = resolve_device(device)
    model, ck = _load_detector_checked(model_path, dev, backbone, mode)
    return model, ck, options_from_dict(ck.get("options") or {})  # old option names too


def _load_detector_checked(model_path: Any, dev: Any, backbone: Any, mode: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`dfig.core.models.load_detector`, with a corrupt or foreign file named "not a checkpoint"."""
    import pickle

    from dfig.core.models import CheckpointMismatchError, load_detector
    from dfig.stages.train import CheckpointFileError, check_checkpoint_file

    check_checkpoint_file(model_path)
    try:
        return load_detector(model_path, map_location=dev, expect_arch=backbone, expect_mode=mode)
    except (RuntimeError, EOFError, pickle.UnpicklingError, CheckpointMismatchError) as e:
        if isinstance(e, CheckpointMismatchError) and not isinstance(e.__cause__, pickle.UnpicklingError):
            raise
        raise CheckpointFileError(
            f"{model_path}: not a checkpoint of a dfig detector, or truncated/corrupt "
            "(it cannot be read as tensors and plain containers); use the "
            "model_epoch_best.pth a dfig.stages.train run wrote"
        ) from e


def inference_dataset(samples: list[Sample], opts: Any, reader: Any, policy: str) -> Any:
    """The evaluation dataset of a checkpoint's options (eval transform, its normalisation) over ``samples``.

    Arguments: ``opts`` the checkpoint's TrainOptions; ``reader`` path -> image/array (e.g. a raw-photo
    pipeline); ``policy`` bad-file policy. Returns: an :class:`~dfig.data.dataset.ImageDataset`.
    """
    from dfig.data.dataset import ImageDataset
    from dfig.data.transforms import build_transform
    from dfig.stages.train import augment_options

    tf = build_transform(augment_options(opts, for_eval=True), train=False, normalize=opts.normalize)
    return ImageDataset(samples, tf, reader=reader, policy=policy, precheck=False)


def score_dataset(
    model: torch.nn.Module, ds: Any, opts: Any, batch_size: int, device: str, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """P(fake) of every image of ``ds`` with the checkpoint's evaluation crop.

    Returns: ``(p_fake, index)``, index into ``ds.samples`` (bad files left out under ``skip``).
    """
    from dfig.accel import resolve_device
    from dfig.data.dataset import make_loader
    from dfig.stages.train import eval_kwargs, evaluate

    loader = make_loader(ds, batch_size=batch_size, shuffle=False, workers=0)
    _, p, idx = evaluate(
        model, loader, resolve_device(device), progress=progress, return_index=True, **eval_kwargs(opts)
    )
    return p, idx


def _samples(files: Sequence[Path], root: Path) -> list[Sample]:
    out = []
    for f in files:
        lab = label_of(f, root)
        out.append(
            Sample(
                f, -1 if lab is None else lab, "predict", "unknown" if lab is None else ("real", "fake")[lab]
            )
        )
    return out


def file_reader(
    files: list[Path], raw: bool, ck: dict[str, Any], device: str, policy: str, report: Any
) -> tuple[list[Path], Any, str]:
    """How each file becomes what the detector reads: the rebuilt feature pipeline, or the file itself.

    Arguments: ``files`` to score; ``raw`` (raw photos: the checkpoint's recorded pipeline, see
    :func:`dfig.stages.predict.pipeline.build_feature_pipeline`); ``ck`` the checkpoint; ``device``;
    ``policy`` (``"skip"`` lists bad files in ``report``, ``"strict"`` raises). Returns: the readable
    files, the reader (path -> array) and its description.
    """
    from dfig.data.images import check_files

    if raw:
        pipeline = build_feature_pipeline(ck.get("features"), device=device)
        return check_files(files, policy=policy, report=report), pipeline.from_path, pipeline.describe()
    from dfig.data.dataset import load_sample_image

    good = []
    for f in files:  # same check the training reader does, with the same policy
        try:
            load_sample_image(f)
            good.append(f)
        except ValueError as e:  # BadImageError
            if policy == "strict":
                raise
            report.fail(f, str(getattr(e, "reason", e)))
    return good, load_sample_image, "read from files"


def flag_faceless(df: Any, reader: Any, notes: list[str]) -> dict[str, Any]:
    """Add the column ``face_found`` to ``df`` (raw photos) and warn once about photos without a face.

    Arguments: ``df`` the scores; ``reader`` the pipeline's ``from_path`` (its :attr:`no_face`);
    ``notes`` the input warnings (the warning is appended). Returns ``{"no_face": [(path, reason)]}``.
    """
    import warnings

    from dfig.stages.predict.pipeline import InputMismatchWarning

    no_face = getattr(getattr(reader, "__self__", None), "no_face", {})
    df["face_found"] = [p not in no_face for p in df["path"]]
    found = [(p, no_face[p]) for p in df["path"] if p in no_face]
    if found:
        msg = (
            f"{len(found)} of {len(df)} photo(s) have no face (e.g. {found[0][0]}: {found[0][1]}): their "
            "p_fake is meaningless (see the face_found column)"
        )
        notes.append(msg)
        warnings.warn(msg, InputMismatchWarning, stacklevel=3)
    return {"no_face": found}


def predict_folder(
    model_path: str | os.PathLike[str],
    input_dir: str | os.PathLike[str],
    raw: bool = False,
    backbone: str | None = None,
    mode: int | str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    threshold: float | str = 0.5,
    policy: str = "skip",
    progress: bool = False,
    max_pixels: int | None = MAX_PIXELS,
) -> Any:
    """Score every image under ``input_dir``; returns a DataFrame.

    Columns: ``path, p_fake, pred_label`` (``p_fake > threshold``; ``threshold="val"`` uses the
    checkpoint's validation threshold) and ``true_label`` when every file lies under a real/fake
    folder. ``raw=True``: ``input_dir`` holds raw photos and the checkpoint's feature pipeline runs
    in memory first. Bad files are skipped and listed in ``df.attrs["skipped"]`` (``policy="skip"``)
    or raise (``"strict"``). ``df.attrs`` also holds the checkpoint, threshold and pipeline used,
    ``input_warnings`` and ``too_small`` (see :func:`screen_inputs`; ``max_pixels=None``: no limit).
    """
    import pandas as pd

    from dfig.runlog import RunReport

    root = Path(input_dir)
    model, ck, opts = load_for_inference(model_path, backbone, mode, device)
    thr = float(ck.get("threshold", 0.5)) if str(threshold) == "val" else float(threshold)
    files = list_images(root, IMAGE_EXTS if raw else INPUT_EXTS)
    if not files:
        raise FileNotFoundError(f"{root}: no images found ({', '.join(IMAGE_EXTS if raw else INPUT_EXTS)})")
    report = RunReport("predict")
    files, screened = screen_inputs(files, root, ck, opts, raw, max_pixels, policy, report)
    files, reader, described = file_reader(files, raw, ck, str(device), policy, report)
    if not files:
        first = report.failed[0] if report.failed else ("", "")
        raise FileNotFoundError(
            f"{root}: no images that can be read (all {len(report.failed)} files were skipped; first: "
            f"{first[0]}: {first[1]})"
        )
    samples = _samples(files, root)
    from dfig.stages.train import region_reader

    ds = inference_dataset(samples, opts, region_reader(reader, opts.center_region), policy)
    p, idx = score_dataset(model, ds, opts, batch_size, str(device), progress)
    kept = [samples[i] for i in idx]
    df = pd.DataFrame(
        {"path": [str(s.path) for s in kept], "p_fake": p.astype(float), "pred_label": (p > thr).astype(int)}
    )
    if kept and all(s.label in (0, 1) for s in kept):
        df["true_label"] = [s.label for s in kept]
    if raw:
        screened = {**screened, **flag_faceless(df, reader, screened["input_warnings"])}
    df.attrs.update(
        model_path=str(model_path),
        threshold=thr,
        raw=raw,
        pipeline=described,
        skipped=list(report.failed),
        config=ck.get("config"),
        **screened,
    )
    return df


# ---------------------------------------------------------------------------------------------
# input screening: size limits and "is this what the detector was trained on?"


__all__ = [
    "INPUT_EXTS",
    "file_reader",
    "flag_faceless",
    "inference_dataset",
    "label_of",
    "load_for_inference",
    "predict_folder",
    "score_dataset",
]
