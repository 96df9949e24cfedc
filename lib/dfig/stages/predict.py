"""Inference with a trained detector on a folder of LNPs or of raw photos (``python -m dfig.predict``).

Two inputs:

- an LNP folder (``raw=False``): files made by ``dfig.stages.lnp`` (``.png`` compat / ``.npy`` clean), or face
  images for a detector trained on images (mode ``"lnp"`` on RGB faces);
- raw photos (``raw=True``): segmentation -> LNP -> classification in one go, in memory. The feature
  pipeline is rebuilt EXACTLY as recorded in the checkpoint's ``"features"`` (the ``dfig_stage.json``
  of the tree it was trained on, with its nested ``"input"`` stages): the segmenter and its prompt (or
  the recorded fallback), the face format (PNG lossless / cv2 JPEG q95), the denoiser (CycleISP file
  with the same SHA-256, or the classical fallback with the same parameters), the save mode (compat:
  BGR into the denoiser, ``clamp -> uint8 -> x255`` wraparound via :func:`dfig.stages.lnp.compat_encode`;
  clean: float16 signed residual). A component that was real in training but is unavailable now is
  an error, never a silent substitute.

Sizes, crops and normalisation come from the checkpoint's stored training options (eval transform
of :mod:`dfig.stages.train`). Labels are read from the folder structure when every file sits under a
``real``/``fake`` (or ``0_real``/``1_fake``) folder. The CSV is written atomically and never into the
input folder: by default next to the checkpoint (``predict_<folder>[_raw].csv``, a name no training
artefact has); an existing file is never replaced unless ``overwrite`` (``--overwrite``).

Inputs are screened before scoring (:func:`screen_inputs`): images larger than ``max_pixels`` are
refused by their header, before decoding (named skip, or an error under ``strict``); images smaller
than the model's crop and inputs that do not look like what the detector was trained on (raw photos
scored as LNPs without ``--raw``, a face tree for an LNP detector) give an :class:`InputMismatchWarning`
and are listed in ``df.attrs``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dfig import io
from dfig.data.layout import CLASS_DIRS, IMAGE_EXTS, Sample, list_images

INPUT_EXTS: tuple[str, ...] = (*IMAGE_EXTS, ".npy")
FEATURE_STAGES: tuple[str, ...] = ("segmentation", "lnp")
#: largest image (width x height) scored by default; raise with ``max_pixels`` / ``--max_pixels``
MAX_PIXELS: int = 4096 * 4096
#: records of raw data, not of a feature stage: the synthetic generator's (``dfig.data.synthetic``)
RAW_DATA_STAGES: tuple[str, ...] = ("synthetic",)


class PipelineMismatchError(RuntimeError):
    """The feature pipeline recorded in a checkpoint cannot be rebuilt exactly here."""


class InputMismatchWarning(UserWarning):
    """The input does not look like what the detector was trained on (kind of file, or size)."""


# ---------------------------------------------------------------------------------------------
# the recorded feature pipeline, rebuilt in memory


def stage_chain(features: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The recorded stages from the raw data outwards, e.g. ``[segmentation meta, lnp meta]``.

    A tree that no dfig stage made (raw photos, ``{}``, or the synthetic generator's record,
    :data:`RAW_DATA_STAGES`) ends the chain. Feature stages made from synthetic data carry a
    ``"synthetic": true`` label too; they are stages all the same (skipping them dropped the
    segmentation of every smoke-profile raw photo). Raises :class:`PipelineMismatchError` for an
    unknown stage.
    """
    chain = []
    meta = dict(features or {})
    while meta.get("stage") and meta["stage"] not in RAW_DATA_STAGES:
        if meta["stage"] not in FEATURE_STAGES:
            raise PipelineMismatchError(
                f"unknown feature stage {meta['stage']!r} in the checkpoint's features "
                f"record; known: {FEATURE_STAGES}"
            )
        chain.append(meta)
        meta = dict(meta.get("input") or {})
    return chain[::-1]


def _rebuild_segmenter(meta: dict[str, Any], device: str) -> Any:
    from dfig.stages.segment import build_segmenter

    rec = dict(meta.get("segmenter") or {})
    method = rec.get("method") or rec.get("name")
    if method == "sam":
        w = rec.get("weights") or {}
        ckpt = w.get("path") if w.get("path") and Path(w["path"]).is_file() else None
        from dfig.fallback import FallbackNotAllowed

        try:
            seg, new = build_segmenter(
                "sam",
                model_type=rec.get("model_type", "vit_h"),
                checkpoint=ckpt,
                prompt=rec.get("prompt", "points"),
                device=device,
                allow_fallback=False,
                verify=w.get("verify", "size"),
            )
        except (FallbackNotAllowed, FileNotFoundError) as e:
            raise PipelineMismatchError(
                f"the detector was trained on faces segmented with SAM {rec.get('model_type')} "
                f"({w.get('file')}), which is not available here; a substitute mask would change the "
                f"features. Put the file in the weights folder (`python -m dfig.weights`). ({e})"
            ) from e
        want, got = w.get("sha256"), (new.get("weights") or {}).get("sha256")
        if want and got and want != got:
            raise PipelineMismatchError(
                f"the detector was trained on faces segmented with SAM weights sha256 "
                f"{want[:16]}..., but {new['weights']['path']} has sha256 {got[:16]}..."
            )
        return seg
    if method in ("prior", "none"):
        seg, _ = build_segmenter(method, allow_fallback=True)  # the recorded (already labelled) fallback
        return seg
    raise PipelineMismatchError(f"cannot rebuild segmenter {method!r} recorded in the checkpoint")


def _rebuild_denoiser(meta: dict[str, Any], device: str) -> Any:
    from dfig.core.denoise import ClassicalDenoiser, load_cycleisp

    rec = dict(meta.get("denoiser") or {})
    method = rec.get("method")
    if method == "classical":
        return ClassicalDenoiser(**dict(rec.get("classical") or {}))
    if method == "cycleisp":
        path = rec.get("path") if rec.get("path") and Path(rec["path"]).is_file() else None
        try:
            den = load_cycleisp(path, device)
        except FileNotFoundError as e:
            raise PipelineMismatchError(
                "the detector was trained on CycleISP LNPs but the CycleISP weights are not available here "
                f"({str(e).splitlines()[0]}); a classical substitute would change the features"
            ) from e
        want, got = rec.get("sha256"), den.source.get("sha256")
        if want and got and want != got:
            raise PipelineMismatchError(
                f"CycleISP weights differ from the training features' (sha256 "
                f"{str(want)[:16]}... recorded, {str(got)[:16]}... found)"
            )
        return den
    raise PipelineMismatchError(f"cannot rebuild denoiser {method!r} recorded in the checkpoint")


def _face_roundtrip(face_rgb: np.ndarray, face_format: str) -> np.ndarray:
    """What reading the saved face file gives back: PNG lossless (identity), JPEG via cv2 at q95."""
    if face_format != "jpg":
        return face_rgb
    import cv2

    from dfig.stages.segment import encode_face

    bgr = cv2.imdecode(np.frombuffer(encode_face(face_rgb, "jpg"), np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass
class FeaturePipeline:
    """Raw photo -> the object the training reader returned for its feature file.

    That is an RGB PIL image for PNG trees (compat LNPs, faces) and a float32 HxWx3 array for clean
    ``.npy`` LNPs, so the detector's eval transform applies unchanged.
    """

    features: dict[str, Any]
    device: str = "cpu"
    chain: list[dict[str, Any]] = field(init=False)
    segmenter: Any = field(init=False, default=None)
    seg_meta: dict[str, Any] | None = field(init=False, default=None)
    denoiser: Any = field(init=False, default=None)
    lnp_meta: dict[str, Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        from dfig.stages.lnp import prepare

        self.chain = stage_chain(self.features)
        for meta in self.chain:
            if meta["stage"] == "segmentation":
                if self.lnp_meta is not None:
                    raise PipelineMismatchError("segmentation after LNP extraction is not a DFIG pipeline")
                self.seg_meta, self.segmenter = meta, _rebuild_segmenter(meta, self.device)
            elif meta["stage"] == "lnp":
                self.lnp_meta = meta
                self.denoiser = prepare(_rebuild_denoiser(meta, self.device), self.device)

    def describe(self) -> str:
        parts = []
        if self.seg_meta:
            rec = self.seg_meta.get("segmenter") or {}
            parts.append(f"segment[{rec.get('name')}, face {self.seg_meta.get('face_format', 'png')}]")
        if self.lnp_meta:
            parts.append(
                f"LNP[{(self.lnp_meta.get('denoiser') or {}).get('method')}, "
                f"{self.lnp_meta.get('save_mode')}]"
            )
        return " -> ".join(parts) or "identity (detector trained on raw images)"

    @property
    def save_mode(self) -> str | None:
        return self.lnp_meta.get("save_mode", "compat") if self.lnp_meta else None

    def from_path(self, path: str | os.PathLike[str]) -> Image.Image | np.ndarray:
        """Features of one raw file, read as the recorded first stage read its inputs."""
        from dfig.data.images import load_rgb

        p = Path(path)
        if self.seg_meta is None and self.lnp_meta is not None:
            from dfig.stages.lnp import (
                read_input,  # compat: cv2 BGR; clean: PIL RGB - as the LNP stage read it
            )

            return self._lnp(read_input(p, self.save_mode))
        return self.from_rgb(np.asarray(load_rgb(p)))

    def from_rgb(self, rgb: np.ndarray | Image.Image) -> Image.Image | np.ndarray:
        """Features of one decoded RGB uint8 image (used for perturbed images)."""
        rgb = np.ascontiguousarray(np.asarray(rgb.convert("RGB") if isinstance(rgb, Image.Image) else rgb))
        if self.seg_meta is not None:
            from dfig.stages.segment import apply_mask

            face = apply_mask(rgb, self.segmenter.segment(rgb).mask)
            rgb = _face_roundtrip(face, self.seg_meta.get("face_format", "png"))
        if self.lnp_meta is None:
            return Image.fromarray(rgb)
        return self._lnp(np.ascontiguousarray(rgb[:, :, ::-1]) if self.save_mode == "compat" else rgb)

    def _lnp(self, img: np.ndarray) -> Image.Image | np.ndarray:
        """``img`` in the denoiser's channel order (BGR compat / RGB clean) -> what the reader returns."""
        from dfig.stages.lnp import compat_encode, lnp_batch

        r = lnp_batch(self.denoiser, [img], self.device, self.lnp_meta.get("precision", "fp32"))[0]
        if self.save_mode == "compat":
            u8 = compat_encode(r)  # BGR order, as cv2 wrote it; PIL reads the file back as RGB
            return Image.fromarray(np.ascontiguousarray(u8[:, :, ::-1]))
        return r.astype(np.float16).astype(np.float32)  # the clean .npy is float16


def build_feature_pipeline(features: dict[str, Any] | None, device: str = "cpu") -> FeaturePipeline:
    """Rebuild the recorded feature pipeline (see :class:`FeaturePipeline`)."""
    return FeaturePipeline(dict(features or {}), device=device)


# ---------------------------------------------------------------------------------------------
# labels, model, data


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

    from dfig.data.images import check_files
    from dfig.runlog import RunReport

    root = Path(input_dir)
    model, ck, opts = load_for_inference(model_path, backbone, mode, device)
    thr = float(ck.get("threshold", 0.5)) if str(threshold) == "val" else float(threshold)
    files = list_images(root, IMAGE_EXTS if raw else INPUT_EXTS)
    if not files:
        raise FileNotFoundError(f"{root}: no images found ({', '.join(IMAGE_EXTS if raw else INPUT_EXTS)})")
    report = RunReport("predict")
    files, screened = screen_inputs(files, root, ck, opts, raw, max_pixels, policy, report)
    if raw:
        pipeline = build_feature_pipeline(ck.get("features"), device=str(device))
        files = check_files(files, policy=policy, report=report)
        reader, described = pipeline.from_path, pipeline.describe()
    else:
        from dfig.data.dataset import load_sample_image

        reader, described = load_sample_image, "read from files"
        good = []
        for f in files:  # same check the training reader does, with the same policy
            try:
                load_sample_image(f)
                good.append(f)
            except ValueError as e:  # BadImageError
                if policy == "strict":
                    raise
                report.fail(f, str(getattr(e, "reason", e)))
        files = good
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


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (no decoding); ``None`` when it cannot be read."""
    try:
        if path.suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            h, w = (shape[1], shape[2]) if len(shape) == 3 and shape[0] == 3 and shape[2] != 3 else shape[:2]
            return int(w), int(h)
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - a bad file is reported by the bad-file check that follows
        return None


def screen_inputs(
    files: list[Path],
    root: Path,
    ck: dict[str, Any],
    opts: Any,
    raw: bool,
    max_pixels: int | None,
    policy: str,
    report: Any,
) -> tuple[list[Path], dict[str, Any]]:
    """Refuse images above ``max_pixels``; warn about images below the crop and mismatched inputs.

    Arguments: the listed ``files`` under ``root``, the checkpoint ``ck`` and its ``opts``, ``raw``,
    ``max_pixels`` (``None``: no limit), ``policy`` and the run ``report`` (refused files go there, or
    raise :class:`BadImageError` under ``strict``). Returns: the files to score and
    ``{"input_warnings": [...], "too_small": [...]}`` for ``df.attrs``.
    """
    from dfig.data.images import BadImageError
    from dfig.stages.train import augment_options

    crop = augment_options(opts, for_eval=True).crop_size
    keep, small = [], []
    for f in files:
        size = image_size(f)
        if size and max_pixels and size[0] * size[1] > max_pixels:
            e = BadImageError(
                f,
                f"{size[0]}x{size[1]} = {size[0] * size[1] / 1e6:.1f} Mpx exceeds max_pixels "
                f"{max_pixels / 1e6:.1f} Mpx (memory grows with the pixel count): pass --max_pixels "
                f"{size[0] * size[1]} to score it",
            )
            if policy == "strict":
                raise e
            report.fail(f, e.reason)
            continue
        if size and min(size) < crop:
            small.append(str(f))
        keep.append(f)
    notes = input_kind_warnings(keep, root, ck.get("features") or {}, raw)
    if small:
        notes.append(
            f"{len(small)} image(s) are smaller than the model's {crop}x{crop} crop (e.g. {small[0]}): "
            "they are padded or upscaled, which changes their noise, so their scores are unreliable"
        )
    for msg in notes:
        warnings.warn(msg, InputMismatchWarning, stacklevel=3)
    return keep, {"input_warnings": notes, "too_small": small}


def _stage_record_above(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``dfig_stage.json`` in ``root`` or up to two folders above (e.g. ``lnp/test/fake``)."""
    for d in (root, *list(root.resolve().parents)[:2]):
        meta = io.read_stage_meta(d)
        if meta:
            return d / io.STAGE_META, meta
    return None


def _midtone_fraction(path: Path) -> float:
    """Share of 8-bit values in [32, 200]: near 0 for compat LNPs (0 or wrapped near 255), large for photos."""
    from dfig.data.images import load_rgb

    a = np.asarray(load_rgb(path))[
        ::2, ::2
    ]  # subsample, never average: averaging 0s and 255s makes mid-tones
    return float(((a >= 32) & (a <= 200)).mean())


def input_kind_warnings(files: list[Path], root: Path, features: dict[str, Any], raw: bool) -> list[str]:
    """Why ``files`` may not be what the detector reads: the input's stage record, or its file types/values.

    Arguments: ``files`` (a sample is inspected), their ``root``, the checkpoint's ``features`` record,
    ``raw`` (the feature pipeline runs first). Returns: warning messages (``[]``: looks right).
    """
    chain = stage_chain(features)
    want = chain[-1] if chain else {}
    want_stage = "raw" if raw else want.get("stage", "raw")
    found = _stage_record_above(root)
    if found is not None:
        rec_path, meta = found
        have = meta.get("stage") or "raw"
        have = "raw" if have == "harmonize" else have  # dfig.data.harmonize writes photos (one JPEG history)
        if have != want_stage:
            fix = (
                (
                    "pass --raw to run the recorded pipeline on raw photos, or give the tree the detector's "
                    "training stage made"
                )
                if want_stage != "raw"
                else "give raw photos with --raw, or drop --raw"
            )
            return [
                f"{root} was made by the {have} stage ({rec_path}) but the detector reads {want_stage} "
                f"input ({describe_expected(want, raw)}): {fix}"
            ]
        if have == "lnp" and meta.get("save_mode") != want.get("save_mode"):
            return [
                f"{root} holds {meta.get('save_mode')} LNPs ({rec_path}) but the detector was trained on "
                f"{want.get('save_mode')} LNPs: extract them with --save_mode {want.get('save_mode')}"
            ]
        return []
    if want_stage != "lnp" or not files:
        return []
    sample = files[:: max(1, len(files) // 8)][:8]
    fix = "pass --raw to segment and extract LNPs first as recorded in the checkpoint"
    if want.get("save_mode") == "clean":
        odd = [f for f in sample if f.suffix.lower() != ".npy"]
        return (
            [f"{root}: {odd[0].name} is not a clean .npy LNP, which the detector reads: {fix}"] if odd else []
        )
    if any(f.suffix.lower() == ".npy" for f in sample):
        return [
            f"{root}: holds .npy files (clean LNPs) but the detector was trained on compat LNP PNGs: extract "
            "them with --save_mode compat, or use a detector trained on clean LNPs"
        ]
    photos = [f for f in sample if f.suffix.lower() != ".png"]
    if photos:
        return [
            f"{root}: {photos[0].name} is a {photos[0].suffix} file, not a compat LNP PNG: these look like "
            f"raw photos; {fix}"
        ]
    mids = [m for m in (_midtone_fraction(f) for f in sample if image_size(f)) if m > 0.25]
    if mids:
        return [
            f"{root}: {len(mids)} of {len(sample)} inspected PNGs have photo-like values (mid-tones), unlike "
            f"compat LNPs (near 0 or 255): these look like photos or faces, not LNPs; {fix}"
        ]
    return []


def describe_expected(want: dict[str, Any], raw: bool) -> str:
    """What the detector reads, in words (for warnings)."""
    if raw or not want:
        return "raw photos"
    if want.get("stage") == "lnp":
        return f"{want.get('save_mode', 'compat')} LNPs made by dfig.stages.lnp"
    return f"masked faces ({want.get('face_format', 'png')}) made by dfig.stages.segment"


# ---------------------------------------------------------------------------------------------
# output and CLI


def default_output_csv(
    model_path: str | os.PathLike[str], input_dir: str | os.PathLike[str], raw: bool
) -> Path:
    """``<checkpoint folder>/predict_<input folder name>[_raw].csv``.

    The ``predict_`` prefix keeps it apart from everything ``dfig.stages.train`` writes there
    (``predictions_{val,test}.csv``, ``summary.json``, ``log.*``, ``model_epoch_*.pth``).
    """
    name = Path(input_dir).resolve().name or "input"
    return Path(model_path).resolve().parent / f"predict_{name}{'_raw' if raw else ''}.csv"


def check_destination(
    dest: str | os.PathLike[str], input_dir: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Refuse a CSV destination inside the input tree, an existing file (unless ``overwrite``) or an
    unwritable folder, before any work. Returns: the resolved path. Raises ValueError/FileExistsError/
    PermissionError naming the file and the flag that fixes it."""
    from dfig.clierrors import check_writable

    dest, inp = Path(dest).resolve(), Path(input_dir).resolve()
    if inp in dest.parents:
        raise ValueError(
            f"{dest} lies inside the input folder {inp}: predictions are never written into "
            "the input tree; choose another --output_csv"
        )
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"{dest} already exists and was not written by this call: pass --overwrite to "
            "replace it, or choose another --output_csv"
        )
    check_writable(dest.parent, "--output_csv")
    return dest


def write_predictions(
    df: Any, dest: str | os.PathLike[str], input_dir: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write the CSV atomically; refuses a destination inside ``input_dir`` or an existing file
    (unless ``overwrite``), see :func:`check_destination`. Returns: the path written."""
    dest = check_destination(dest, input_dir, overwrite)
    io.atomic_write_text(dest, df.to_csv(index=False))
    return dest


def summary(df: Any) -> dict[str, Any]:
    """Counts, mean p_fake and (when labels are known) metrics at the threshold used."""
    out: dict[str, Any] = {
        "n": int(len(df)),
        "pred_fake": int(df["pred_label"].sum()),
        "pred_real": int((1 - df["pred_label"]).sum()),
        "mean_p_fake": float(df["p_fake"].mean()) if len(df) else float("nan"),
        "threshold": df.attrs.get("threshold"),
        "skipped": len(df.attrs.get("skipped", [])),
    }
    if "true_label" in df and len(df):
        from dfig.core.metrics import compute_metrics

        m = compute_metrics(df["true_label"].to_numpy(), df["p_fake"].to_numpy(), out["threshold"] or 0.5)
        out["metrics"] = {k: float(m[k]) for k in ("acc", "real_acc", "fake_acc", "ap", "roc_auc", "eer")}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.predict --backbone res50 --mode 0 --model_path F --input_dir D [--raw]``."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.predict", description="Score a folder with a trained detector."
    )
    ap.add_argument("--model_path", required=True, help="model_epoch_best.pth of a dfig.stages.train run")
    ap.add_argument("--input_dir", required=True, help="LNP folder (or raw photos with --raw)")
    ap.add_argument(
        "--backbone",
        "--arch",
        dest="backbone",
        default=None,
        help="res50 | mobilev2 | res34: checked against the checkpoint",
    )
    ap.add_argument("--mode", default=None, help="0 | 1 | 2 | lnp | spec: checked against the checkpoint")
    ap.add_argument("--raw", action="store_true", help="input_dir holds raw photos: segment -> LNP in memory")
    ap.add_argument("--output_csv", default=None, help="default: next to the checkpoint")
    ap.add_argument("--threshold", default="0.5", help="0.5 (default), a number, or 'val' (the checkpoint's)")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--policy", default="skip", choices=("skip", "strict"))
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --output_csv")
    ap.add_argument(
        "--max_pixels",
        type=int,
        default=MAX_PIXELS,
        help=f"refuse larger images (default {MAX_PIXELS}; 0: no limit)",
    )
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    from dfig.clierrors import USER_ERRORS, fail

    try:
        df, dest = _run_cli(a)
    except (*USER_ERRORS, PipelineMismatchError) as e:
        return fail(e)
    s = summary(df)
    print(f"features: {df.attrs['pipeline']}")
    print(
        f"{s['n']} images scored ({s['skipped']} skipped): {s['pred_fake']} predicted fake, "
        f"{s['pred_real']} real at threshold {s['threshold']:.4g}; mean p_fake {s['mean_p_fake']:.4f}"
    )
    for p, r in df.attrs["skipped"][:20]:
        print(f"  SKIPPED {p}: {r}")
    if "metrics" in s:
        print("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in s["metrics"].items()))
    for msg in df.attrs.get("input_warnings", []):
        print(f"WARNING: {msg}")
    print(f"predictions: {dest}")
    return 0


def _run_cli(a: argparse.Namespace) -> tuple[Any, Path]:
    """Check the input and the destination first, then score and write (for :func:`main`)."""
    try:
        thr: float | str = "val" if a.threshold == "val" else float(a.threshold)
    except ValueError:
        raise ValueError(f"--threshold {a.threshold!r}: give a number (e.g. 0.5) or 'val'") from None
    from dfig.stages.train import check_checkpoint_file

    check_checkpoint_file(a.model_path)
    if not Path(a.input_dir).is_dir():
        raise FileNotFoundError(f"--input_dir {a.input_dir}: no such folder (check the path)")
    dest = check_destination(
        a.output_csv or default_output_csv(a.model_path, a.input_dir, a.raw), a.input_dir, a.overwrite
    )
    df = predict_folder(
        a.model_path,
        a.input_dir,
        raw=a.raw,
        backbone=a.backbone,
        mode=a.mode,
        batch_size=a.batch_size,
        device=a.device,
        threshold=thr,
        policy=a.policy,
        progress=not a.no_progress,
        max_pixels=a.max_pixels or None,
    )
    return df, write_predictions(df, dest, a.input_dir, overwrite=a.overwrite)


if __name__ == "__main__":
    sys.exit(main())
