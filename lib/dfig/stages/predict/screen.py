"""Input screening: size limits and "is this what the detector was trained on?"."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfig import io
from dfig.stages.predict.pipeline import InputMismatchWarning, stage_chain


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
        # dfig.data.harmonize writes photos (one JPEG history); a cross-generator pair tree links photos
        have = "raw" if have in ("harmonize", "crossgen_pairs") else have
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


__all__ = ["describe_expected", "image_size", "input_kind_warnings", "screen_inputs"]
