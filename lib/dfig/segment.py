"""Face segmentation: SAM (segment-anything) with point / box / automatic prompts, and labelled fallbacks.

Segmenters (``SEGMENTERS``, built by :func:`build_segmenter`) share one API:
``.segment(rgb HxWx3 uint8) -> SegResult(mask bool HxW, score float)`` and ``.name``.

- ``sam``: Segment Anything, one image-encoder pass per image (``SamPredictor.set_image``), then a
  prompt from ``PROMPTS``:

  - ``points`` (default; the original project's): two positive points at (x, y) = (128, 128) and
    (128, 236) of a 256x256 image, scaled to the image size; ``multimask_output=True``, the
    best-scoring mask's low-res logits go back in as ``mask_input`` for one more prediction with
    ``multimask_output=False``.
  - ``box``: the face box of an FFHQ-aligned crop (:data:`FACE_BOX`, scaled) with
    ``multimask_output=False``.
  - ``auto``: for unaligned photos. ``SamAutomaticMaskGenerator`` (single crop layer) proposes masks
    from a point grid; the largest one covering the image centre gives a box prompt. The generator
    reuses the embedding already computed for the image, so ``auto`` still costs ONE encoder pass;
    its extra cost is the mask decoder on ``points_per_side**2`` point prompts (default 16 x 16 here,
    SAM's own default 32 x 32 costs 4x more): on 2 CPU cores about 3x the encoder's time for vit_b
    (benchmarks/bench_sam.py). (A generator with ``crop_n_layers > 0`` would need one encoder pass per
    crop; it is not used.)

- ``prior`` (fallback): the aligned-face prior, an ellipse inscribed in :data:`FACE_BOX`.
- ``none`` (fallback): the whole image.

Fallbacks go through :func:`dfig.fallback.use_fallback` (refused in the ``paper`` profile). ``sam``
falls back to ``prior`` only when its weights are missing from a folder (the default
``pretrained/`` or a folder given as ``checkpoint``); a checkpoint FILE that is named but missing, or a
wrong file, is an error.

Geometry of an FFHQ-aligned face (the FFHQ/StyleGAN alignment scales the crop to about 4x the eye
distance, eyes on one line): eye centres at about (0.375, 0.47) and (0.625, 0.47) of the image, mouth
at (0.5, 0.71), chin at about 0.84, hairline at about 0.23 (checked on the mean of 300 images of the
face sample). :data:`FACE_BOX` ``= (0.18, 0.14, 0.82, 0.90)`` (x0, y0, x1, y1 as fractions of width and
height) spans cheek to cheek with a small margin and forehead to just below the chin; the prior is the
ellipse inscribed in it: centre (0.50, 0.52), semi-axes 0.32 W and 0.38 H.

:func:`segment_tree` runs a segmenter over a dataset tree (resumable, sharded, bad files reported);
``python -m dfig.segment`` is its CLI.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from dfig.data.images import BAD_FILE_POLICIES, BadImageError, load_rgb
from dfig.fallback import use_fallback
from dfig.io import atomic_write_bytes, atomic_write_text, read_stage_meta, write_stage_meta
from dfig.runlog import RunReport
from dfig.tree import parse_shard, plan_tree
from dfig.weights import MissingWeightsError, WrongWeightsError

STAGE = "segmentation"
CSV_NAME = "segmentation.csv"
CSV_FIELDS = ("path", "mask_area", "score", "segmenter")
FACE_FORMATS: tuple[str, ...] = ("png", "jpg")
SAM_MODEL_TYPES: tuple[str, ...] = ("vit_h", "vit_l", "vit_b")
JPEG_QUALITY = 95  # cv2's default, as the original's cv2.imwrite

#: The original project's two positive points, (x, y) on a 256x256 image.
SAM_POINTS_256: tuple[tuple[float, float], ...] = ((128.0, 128.0), (128.0, 236.0))
#: Face box of an FFHQ-aligned crop, (x0, y0, x1, y1) as fractions of (W, H, W, H). See module doc.
FACE_BOX: tuple[float, float, float, float] = (0.18, 0.14, 0.82, 0.90)

_CSV_FLUSH_EVERY = 500


@dataclass
class SegResult:
    """A face mask (bool HxW, True = face) and the segmenter's confidence (NaN where it has none)."""

    mask: np.ndarray
    score: float
    info: dict[str, Any] = field(default_factory=dict)


class Segmenter(Protocol):
    name: str

    def segment(self, rgb: np.ndarray) -> SegResult: ...


def _as_rgb(rgb: Any) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {a.shape} dtype {a.dtype}")
    return a


def face_box(height: int, width: int) -> np.ndarray:
    """:data:`FACE_BOX` in pixels (x0, y0, x1, y1) for an aligned face of size ``height`` x ``width``."""
    x0, y0, x1, y1 = FACE_BOX
    return np.array([x0 * width, y0 * height, x1 * width, y1 * height], dtype=np.float64)


def prior_mask(height: int, width: int) -> np.ndarray:
    """The aligned-face prior: the ellipse inscribed in :data:`FACE_BOX` (pixel centres inside)."""
    x0, y0, x1, y1 = FACE_BOX
    cx, cy, ax, ay = (x0 + x1) / 2 * width, (y0 + y1) / 2 * height, (x1 - x0) / 2 * width, (y1 - y0) / 2 * height
    yy, xx = np.mgrid[0:height, 0:width]
    return ((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2 <= 1.0


def apply_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked face: pixels outside ``mask`` set to 0 (as the original), same shape and dtype."""
    rgb = np.asarray(rgb)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {rgb.shape[:2]}")
    return np.where(mask[..., None], rgb, np.zeros((), dtype=rgb.dtype))


# ---------------------------------------------------------------------------------------------
# fallback segmenters

class PriorSegmenter:
    """Aligned-face prior (ellipse in :data:`FACE_BOX`, scaled to the image); no model, score NaN."""

    name = "prior"

    def segment(self, rgb: np.ndarray) -> SegResult:
        h, w = _as_rgb(rgb).shape[:2]
        return SegResult(prior_mask(h, w), math.nan)


class WholeImageSegmenter:
    """No segmentation: the whole image is the mask; score NaN."""

    name = "none"

    def segment(self, rgb: np.ndarray) -> SegResult:
        h, w = _as_rgb(rgb).shape[:2]
        return SegResult(np.ones((h, w), dtype=bool), math.nan)


# ---------------------------------------------------------------------------------------------
# SAM

def _prompt_points(seg: SamSegmenter, rgb: np.ndarray) -> SegResult:
    h, w = rgb.shape[:2]
    pts = np.array(SAM_POINTS_256, dtype=np.float64) * np.array([w / 256.0, h / 256.0])
    labels = np.ones(len(pts), dtype=np.int64)
    _, scores, logits = seg.predictor.predict(point_coords=pts, point_labels=labels, multimask_output=True)
    best = int(np.argmax(scores))
    masks, scores2, _ = seg.predictor.predict(point_coords=pts, point_labels=labels,
                                              mask_input=logits[best][None, :, :], multimask_output=False)
    return SegResult(masks[0].astype(bool), float(scores2[0]), {"first_pass_best": best})


def _prompt_box(seg: SamSegmenter, rgb: np.ndarray) -> SegResult:
    box = face_box(*rgb.shape[:2])
    masks, scores, _ = seg.predictor.predict(box=box, multimask_output=False)
    return SegResult(masks[0].astype(bool), float(scores[0]), {"box": box.tolist()})


class _SharedEmbedding:
    """Stands in for the generator's own SamPredictor: reuses the embedding already set, no 2nd pass."""

    def __init__(self, predictor: Any, image_shape: tuple[int, ...]) -> None:
        self._p = predictor
        self._shape = tuple(image_shape)

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        if tuple(image.shape) != self._shape or not self._p.is_image_set:
            raise RuntimeError("auto prompt: the generator asked for a crop; only crop_n_layers=0 is supported")

    def reset_image(self) -> None:  # keep the embedding for the box prompt that follows
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


def _prompt_auto(seg: SamSegmenter, rgb: np.ndarray) -> SegResult:
    from segment_anything import SamAutomaticMaskGenerator

    h, w = rgb.shape[:2]
    gen = SamAutomaticMaskGenerator(seg.model, crop_n_layers=0, **seg.auto_options)
    gen.predictor = _SharedEmbedding(seg.predictor, rgb.shape)
    anns = gen.generate(rgb)
    cy, cx = h // 2, w // 2
    central = [a for a in anns if a["segmentation"][cy, cx]]
    if central:
        pick, source = max(central, key=lambda a: a["area"]), "largest mask covering the centre"
    elif anns:
        def dist(a: Mapping[str, Any]) -> float:
            bx, by, bw, bh = a["bbox"]
            return (bx + bw / 2 - cx) ** 2 + (by + bh / 2 - cy) ** 2
        pick, source = min(anns, key=dist), "no mask covers the centre: mask whose box centre is nearest"
    else:
        pick, source = None, "no mask proposed: aligned-face box"
    if pick is not None:
        bx, by, bw, bh = pick["bbox"]
        box = np.array([bx, by, bx + bw, by + bh], dtype=np.float64)
    else:
        box = face_box(h, w)
    masks, scores, _ = seg.predictor.predict(box=box, multimask_output=False)
    return SegResult(masks[0].astype(bool), float(scores[0]),
                     {"box": box.tolist(), "box_source": source, "proposals": len(anns)})


#: Prompt name -> function(SamSegmenter, rgb) -> SegResult (the image embedding is already set).
PROMPTS: dict[str, Callable[[SamSegmenter, np.ndarray], SegResult]] = {
    "points": _prompt_points,
    "box": _prompt_box,
    "auto": _prompt_auto,
}


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    if isinstance(obj, Mapping) and len(obj) == 1:
        (k, v), = obj.items()
        if k in ("state_dict", "model") and isinstance(v, Mapping):
            obj = v
    if not isinstance(obj, Mapping):
        raise WrongWeightsError(f"{path}: not a state dict (found {type(obj).__name__}); expected an official SAM "
                         "checkpoint such as sam_vit_h_4b8939.pth")
    return dict(obj)


def _key_list(keys: set[str], limit: int = 12) -> str:
    ks = sorted(keys)
    return ", ".join(ks[:limit]) + (f", ... ({len(ks) - limit} more)" if len(ks) > limit else "")


def load_sam(model_type: str, checkpoint: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Build SAM ``model_type`` and load ``checkpoint`` on CPU, strictly (every key, every shape).

    Raises :class:`dfig.weights.WrongWeightsError` naming the file and listing missing/unexpected keys.
    """
    import torch
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {SAM_MODEL_TYPES}")
    path = Path(checkpoint)
    try:
        sd = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise WrongWeightsError(f"{path}: cannot be read as a PyTorch checkpoint ({e}). "
                                "Download the file again.") from e
    sam = sam_model_registry[model_type](checkpoint=None)
    want, have = set(sam.state_dict()), set(sd)
    missing, unexpected = want - have, have - want
    if missing or unexpected:
        raise WrongWeightsError(
            f"{path}: not a SAM {model_type} checkpoint: {len(missing)} missing keys"
            + (f" [{_key_list(missing)}]" if missing else "")
            + f", {len(unexpected)} unexpected keys" + (f" [{_key_list(unexpected)}]" if unexpected else "")
            + f". Check that --model_type ({model_type}) matches the file (sam_vit_h_4b8939.pth = vit_h, "
            "sam_vit_l_0b3195.pth = vit_l, sam_vit_b_01ec64.pth = vit_b).")
    try:
        sam.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # shape mismatches
        raise WrongWeightsError(f"{path}: tensors do not fit SAM {model_type}: {e}") from e
    return sam.to(torch.device(device)).eval()


class SamSegmenter:
    """SAM with one image-encoder pass per image, then the prompt ``prompt`` (see :data:`PROMPTS`).

    ``encoder_passes`` counts image-encoder forward calls; ``last_timing`` holds the seconds spent in
    the encoder and in prompt decoding for the last image.
    """

    def __init__(self, model: Any, prompt: str = "points", model_type: str = "custom",
                 auto_options: Mapping[str, Any] | None = None) -> None:
        from segment_anything import SamPredictor

        if prompt not in PROMPTS:
            raise ValueError(f"unknown SAM prompt {prompt!r}; choose one of {tuple(PROMPTS)}")
        self.model = model.eval()
        self.prompt = prompt
        self.model_type = model_type
        self.name = f"sam_{model_type}_{prompt}"
        self.auto_options = dict(auto_options or {"points_per_side": 16})
        self.predictor = SamPredictor(self.model)
        self.encoder_passes = 0
        self.last_timing: dict[str, float] = {}
        self.model.image_encoder.register_forward_hook(self._count_pass)

    def _count_pass(self, *_: Any) -> None:
        self.encoder_passes += 1

    def segment(self, rgb: np.ndarray) -> SegResult:
        rgb = _as_rgb(rgb)
        t0 = time.perf_counter()
        self.predictor.set_image(rgb, image_format="RGB")
        t1 = time.perf_counter()
        res = PROMPTS[self.prompt](self, rgb)
        t2 = time.perf_counter()
        self.predictor.reset_image()
        self.last_timing = {"encoder_s": t1 - t0, "decode_s": t2 - t1}
        return res


# ---------------------------------------------------------------------------------------------
# registry and builder

def _sam_builder(model_type: str = "vit_h", checkpoint: str | os.PathLike[str] | None = None,
                 prompt: str = "points", device: str = "cpu", verify: str = "size",
                 allow_fallback: bool | None = None) -> tuple[Segmenter, dict[str, Any]]:
    from dfig import weights

    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {SAM_MODEL_TYPES}")
    if prompt not in PROMPTS:
        raise ValueError(f"unknown SAM prompt {prompt!r}; choose one of {tuple(PROMPTS)}")
    wname = f"sam_{model_type}"
    try:
        path = weights.locate(wname, checkpoint, verify=verify)
    except MissingWeightsError as e:
        if checkpoint is not None and not Path(checkpoint).is_dir():
            raise  # a file named explicitly must exist
        seg, rec = _fallback_builder("prior", instead_of=f"SAM {model_type} ({prompt} prompt)", reason=str(e),
                                     allow_fallback=allow_fallback)
        return seg, {**rec, "requested": {"method": "sam", "model_type": model_type, "prompt": prompt}}
    model = load_sam(model_type, path, device)
    digest = weights.verify(wname, path)["sha256"] or weights.sha256_file(path)
    seg = SamSegmenter(model, prompt=prompt, model_type=model_type)
    rec = {"method": "sam", "name": seg.name, "model_type": model_type, "prompt": prompt, "device": str(device),
           "weights": {"weights": wname, "file": path.name, "path": str(path), "size": path.stat().st_size,
                       "sha256": digest, "verify": verify,
                       "official_size": weights.spec(wname).size == path.stat().st_size,
                       "provenance": weights.describe(path)},
           "fallback": None}
    if prompt == "auto":
        rec["auto_options"] = {"crop_n_layers": 0, **seg.auto_options}
    return seg, rec


_FALLBACKS: dict[str, tuple[type, str]] = {
    "prior": (PriorSegmenter, "aligned-face prior mask (ellipse inscribed in the FFHQ face box "
                              f"{FACE_BOX}, fractions of W/H)"),
    "none": (WholeImageSegmenter, "whole image (no segmentation)"),
}


def _fallback_builder(name: str, instead_of: str = "SAM face segmentation",
                      reason: str = "requested explicitly", allow_fallback: bool | None = None,
                      **_: Any) -> tuple[Segmenter, dict[str, Any]]:
    cls, desc = _FALLBACKS[name]
    fb = use_fallback(STAGE, f"{name}: {desc}", instead_of, reason, allowed=allow_fallback)
    rec: dict[str, Any] = {"method": name, "name": name, "description": desc, "fallback": fb}
    if name == "prior":
        rec["face_box"] = list(FACE_BOX)
    return cls(), rec


#: Segmenter name -> builder(**options) -> (segmenter, record). ``prior``/``none`` are fallbacks.
SEGMENTERS: dict[str, Callable[..., tuple[Segmenter, dict[str, Any]]]] = {
    "sam": _sam_builder,
    "prior": lambda **kw: _fallback_builder("prior", **kw),
    "none": lambda **kw: _fallback_builder("none", **kw),
}


def build_segmenter(name: str = "sam", model_type: str = "vit_h",
                    checkpoint: str | os.PathLike[str] | None = None, prompt: str = "points",
                    device: str = "cpu", allow_fallback: bool | None = None,
                    verify: str = "size") -> tuple[Segmenter, dict[str, Any]]:
    """Build a segmenter and the record to store with its outputs.

    ``sam``: ``checkpoint`` is a file, a folder, or ``None`` (``pretrained/``, ``$DFIG_WEIGHTS``); the
    file is checked by :func:`dfig.weights.locate` (``verify`` = ``"size"``, ``"hash"`` or ``"none"``
    for a non-official file such as a fine-tuned SAM) and loaded strictly. Missing weights in a folder
    -> the ``prior`` fallback (recorded; refused where fallbacks are not allowed, e.g. the paper
    profile). ``prior`` / ``none`` are always recorded as fallbacks.
    """
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {name!r}; choose one of {tuple(SEGMENTERS)}")
    if name == "sam":
        return _sam_builder(model_type=model_type, checkpoint=checkpoint, prompt=prompt, device=device,
                            verify=verify, allow_fallback=allow_fallback)
    return SEGMENTERS[name](allow_fallback=allow_fallback)


# ---------------------------------------------------------------------------------------------
# dataset tree

def default_mask_dir(output_dir: str | os.PathLike[str]) -> Path:
    """``<parent>/masks`` when ``output_dir`` is named ``faces``, else ``<output_dir>_masks`` (a sibling).

    Masks never go inside the faces tree, so the next stage (LNP) does not mistake them for faces.
    """
    out = Path(output_dir)
    return out.parent / "masks" if out.name == "faces" else out.with_name(out.name + "_masks")


def _encode_png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise RuntimeError("cv2 could not encode a PNG")
    return buf.tobytes()


def _encode_face(rgb: np.ndarray, face_format: str) -> bytes:
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if face_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError("cv2 could not encode a JPEG")
        return buf.tobytes()
    return _encode_png(bgr)


def _read_csv(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["path"]: r for r in csv.DictReader(f) if r.get("path")}


def _write_csv(path: Path, rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge ``rows`` into the CSV on disk (re-read just before writing), write atomically."""
    merged = {**_read_csv(path), **{k: dict(v) for k, v in rows.items()}}
    lines = [",".join(CSV_FIELDS)]
    for k in sorted(merged):
        r = merged[k]
        lines.append(",".join(_csv_cell(r.get(c, "")) for c in CSV_FIELDS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _csv_cell(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def segment_tree(input_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str], segmenter: Segmenter,
                 record: Mapping[str, Any] | None = None, face_format: str = "png",
                 mask_dir: str | os.PathLike[str] | None = None, policy: str = "skip",
                 shard: tuple[int, int] | str = (0, 1), progress: bool = True) -> RunReport:
    """Segment every image under ``input_dir``; write masked faces and masks mirroring its layout.

    Outputs: ``<output_dir>/<rel>.<face_format>`` (background 0; ``png`` lossless by default, ``jpg``
    re-encodes through cv2 at quality 95 as the original), ``<mask_dir>/<rel>.png`` (0/255; default
    :func:`default_mask_dir`), ``<output_dir>/segmentation.csv`` (path, mask_area fraction, score,
    segmenter; merged with earlier rows) and ``<output_dir>/dfig_stage.json``. Every file is written
    atomically; existing faces are skipped (resume). Bad input files are listed in the report
    (``policy="skip"``) or raise :class:`~dfig.data.images.BadImageError` (``"strict"``).
    ``shard=(k, n)`` or ``"k/n"`` takes every n-th file starting at k.
    """
    from tqdm.auto import tqdm

    if face_format not in FACE_FORMATS:
        raise ValueError(f"face_format must be one of {FACE_FORMATS}, got {face_format!r}")
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    shard = parse_shard(shard)
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    masks = Path(mask_dir).resolve() if mask_dir is not None else default_mask_dir(out)
    plan = plan_tree(inp, out, "." + face_format, shard=shard, overwrite=True)  # all pairs; split below
    if _inside(masks, inp) or _inside(masks, out) or _inside(out, masks):
        raise ValueError(f"mask folder {masks} must lie outside the input folder {inp} and the faces "
                         f"folder {out} (and not contain it): choose another --mask_dir")
    rec = dict(record) if record is not None else {"name": segmenter.name}
    seg_name = rec.get("name", segmenter.name)

    meta_prev = read_stage_meta(out)
    if meta_prev.get("stage") == STAGE:
        prev = meta_prev.get("segmenter", {})
        prev_id = (prev.get("name"), (prev.get("weights") or {}).get("sha256"), meta_prev.get("face_format"))
        cur_id = (seg_name, (rec.get("weights") or {}).get("sha256"), face_format)
        if prev_id != cur_id:
            raise ValueError(f"{out} holds faces made by segmenter {prev_id[0]!r} (weights sha256 {prev_id[1]}, "
                             f"format {prev_id[2]}), not {cur_id[0]!r} (sha256 {cur_id[1]}, format {cur_id[2]}): "
                             "resuming would mix methods. Use another --output_dir or delete that one.")

    report = RunReport(STAGE, extra={"segmenter": seg_name, "shard": f"{shard[0]}/{shard[1]}"})
    csv_path = out / CSV_NAME
    old_rows = _read_csv(csv_path)
    new_rows: dict[str, dict[str, Any]] = {}
    todo = []
    for src, dest in plan.todo:  # resume: done = face AND mask exist (the face is written last)
        rel = dest.relative_to(out).as_posix()
        mpath = masks / Path(rel).with_suffix(".png")
        if not (dest.exists() and mpath.exists()):
            todo.append((src, dest))
            continue
        report.skipped_existing += 1
        if rel not in old_rows:  # a row lost in a crash: recover the area from the mask (score unknown)
            m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
            area = float((m > 127).mean()) if m is not None else math.nan
            new_rows[rel] = {"path": rel, "mask_area": area, "score": math.nan, "segmenter": seg_name}

    meta = {"stage": STAGE, "segmenter": rec, "face_format": face_format,
            "jpeg_quality": JPEG_QUALITY if face_format == "jpg" else None, "background": 0,
            "mask_dir": str(masks), "csv": CSV_NAME, "input_dir": str(inp), "input": read_stage_meta(inp)}
    if meta["input"].get("synthetic"):
        meta["synthetic"] = True
    write_stage_meta(out, {**meta, "counts": None})

    seen: set[Path] = set()
    for src, dest in tqdm(todo, desc=f"segment [{seg_name}]", disable=not progress, unit="img"):
        if dest in seen:
            report.fail(src, f"its output {dest.name} collides with another input of the same name")
            continue
        seen.add(dest)
        try:
            rgb = np.asarray(load_rgb(src))
        except BadImageError as e:
            if policy == "strict":
                raise
            report.fail(e.path, e.reason)
            continue
        res = segmenter.segment(rgb)
        mask = np.asarray(res.mask, dtype=bool)
        rel = dest.relative_to(out).as_posix()
        atomic_write_bytes(masks / Path(rel).with_suffix(".png"), _encode_png(mask.astype(np.uint8) * 255))
        atomic_write_bytes(dest, _encode_face(apply_mask(rgb, mask), face_format))  # face last: marks done
        new_rows[rel] = {"path": rel, "mask_area": float(mask.mean()), "score": float(res.score),
                         "segmenter": seg_name}
        report.done += 1
        if report.done % _CSV_FLUSH_EVERY == 0:
            _write_csv(csv_path, new_rows)

    if new_rows or not csv_path.exists():
        _write_csv(csv_path, new_rows)
    total = len(_read_csv(csv_path))
    write_stage_meta(out, {**meta, "counts": {"faces_in_csv": total, "this_run": report.to_dict()}})
    return report


# ---------------------------------------------------------------------------------------------
# CLI

def main(argv: list[str] | None = None) -> int:
    """``python -m dfig.segment``: segment a dataset tree (as the original SAM.py was used)."""
    ap = argparse.ArgumentParser(prog="python -m dfig.segment",
                                 description="Face masks with SAM (or a labelled fallback) over a dataset tree.")
    ap.add_argument("--input_dir", required=True, help="raw images, {split}/{class}/* or a flat folder")
    ap.add_argument("--output_dir", required=True, help="masked faces (mirrors the input tree)")
    ap.add_argument("--segmenter", default="sam", choices=tuple(SEGMENTERS),
                    help="sam (default) or a fallback: prior (aligned-face ellipse), none (whole image)")
    ap.add_argument("--model_type", default="vit_h", choices=SAM_MODEL_TYPES)
    ap.add_argument("--checkpoint", default=None,
                    help="SAM file or folder (default: pretrained/ or $DFIG_WEIGHTS)")
    ap.add_argument("--verify", default="size", choices=("none", "size", "hash"),
                    help="how the SAM file is checked (none: a non-official file, e.g. fine-tuned)")
    ap.add_argument("--prompt", default="points", choices=tuple(PROMPTS))
    ap.add_argument("--face_format", default="png", choices=FACE_FORMATS,
                    help="png (lossless, default) or jpg (the original: cv2 JPEG quality 95)")
    ap.add_argument("--mask_dir", default=None, help="default: <parent>/masks for .../faces, else <output_dir>_masks")
    ap.add_argument("--shard", default="0/1", help="K/N: this process takes every N-th file from K")
    ap.add_argument("--policy", default="skip", choices=BAD_FILE_POLICIES, help="bad input files")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    from dfig.fallback import FallbackNotAllowed

    try:
        seg, rec = build_segmenter(a.segmenter, model_type=a.model_type, checkpoint=a.checkpoint,
                                   prompt=a.prompt, device=a.device, verify=a.verify)
    except (FallbackNotAllowed, MissingWeightsError, WrongWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    w = rec.get("weights")
    print(f"segmenter: {rec['name']}" + (f" ({w['path']}, sha256 {str(w['sha256'])[:16]})" if w else "")
          + (f"  FALLBACK: {rec['fallback']['reason']}" if rec.get("fallback") else ""))
    try:
        report = segment_tree(a.input_dir, a.output_dir, seg, record=rec, face_format=a.face_format,
                              mask_dir=a.mask_dir, policy=a.policy, shard=parse_shard(a.shard),
                              progress=not a.no_progress)
    except (BadImageError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    out = Path(a.output_dir)
    print(f"faces: {out}  masks: {Path(a.mask_dir) if a.mask_dir else default_mask_dir(out.resolve())}  "
          f"table: {out / CSV_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["SEGMENTERS", "PROMPTS", "FACE_BOX", "SAM_POINTS_256", "SAM_MODEL_TYPES", "FACE_FORMATS", "SegResult",
           "Segmenter", "SamSegmenter", "PriorSegmenter", "WholeImageSegmenter", "build_segmenter", "load_sam",
           "prior_mask", "face_box", "apply_mask", "default_mask_dir", "segment_tree", "main"]
