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
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES, drain_done
from dfig.data.images import BAD_FILE_POLICIES, BadImageError, load_rgb
from dfig.fallback import use_fallback
from dfig.io import (
    STAGE_META,
    atomic_write_bytes,
    atomic_write_text,
    read_stage_meta,
    update_stage_meta,
)
from dfig.runlog import RunReport
from dfig.tree import clear_outputs, holds_outputs, parse_shard, plan_tree, record_run, remove_orphans
from dfig.weights import MissingWeightsError, WrongWeightsError

STAGE = "segmentation"
CSV_NAME = "segmentation.csv"
CSV_FIELDS = ("path", "mask_area", "score", "segmenter")
FACE_FORMATS: tuple[str, ...] = ("png", "jpg")
SAM_MODEL_TYPES: tuple[str, ...] = ("vit_h", "vit_l", "vit_b")
FACE_SUFFIXES = (".png", ".jpg")  # what a faces folder holds, in either face format
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
    cx, cy, ax, ay = (
        (x0 + x1) / 2 * width,
        (y0 + y1) / 2 * height,
        (x1 - x0) / 2 * width,
        (y1 - y0) / 2 * height,
    )
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
    masks, scores2, _ = seg.predictor.predict(
        point_coords=pts, point_labels=labels, mask_input=logits[best][None, :, :], multimask_output=False
    )
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
            raise RuntimeError(
                "auto prompt: the generator asked for a crop; only crop_n_layers=0 is supported"
            )

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
    return SegResult(
        masks[0].astype(bool),
        float(scores[0]),
        {"box": box.tolist(), "box_source": source, "proposals": len(anns)},
    )


#: Prompt name -> function(SamSegmenter, rgb) -> SegResult (the image embedding is already set).
PROMPTS: dict[str, Callable[[SamSegmenter, np.ndarray], SegResult]] = {
    "points": _prompt_points,
    "box": _prompt_box,
    "auto": _prompt_auto,
}


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    if isinstance(obj, Mapping) and len(obj) == 1:
        ((k, v),) = obj.items()
        if k in ("state_dict", "model") and isinstance(v, Mapping):
            obj = v
    if not isinstance(obj, Mapping):
        raise WrongWeightsError(
            f"{path}: not a state dict (found {type(obj).__name__}); expected an official SAM "
            "checkpoint such as sam_vit_h_4b8939.pth"
        )
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
        raise WrongWeightsError(
            f"{path}: cannot be read as a PyTorch checkpoint ({e}). Download the file again."
        ) from e
    sam = sam_model_registry[model_type](checkpoint=None)
    want, have = set(sam.state_dict()), set(sd)
    missing, unexpected = want - have, have - want
    if missing or unexpected:
        raise WrongWeightsError(
            f"{path}: not a SAM {model_type} checkpoint: {len(missing)} missing keys"
            + (f" [{_key_list(missing)}]" if missing else "")
            + f", {len(unexpected)} unexpected keys"
            + (f" [{_key_list(unexpected)}]" if unexpected else "")
            + f". Check that --model_type ({model_type}) matches the file (sam_vit_h_4b8939.pth = vit_h, "
            "sam_vit_l_0b3195.pth = vit_l, sam_vit_b_01ec64.pth = vit_b)."
        )
    try:
        sam.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # shape mismatches
        raise WrongWeightsError(f"{path}: tensors do not fit SAM {model_type}: {e}") from e
    return sam.to(torch.device(device)).eval()


class SamSegmenter:
    """SAM with one image-encoder pass per image, then the prompt ``prompt`` (see :data:`PROMPTS`).

    :meth:`segment` is segment-anything's own ``SamPredictor`` path, one image, fp32 (the reference);
    :meth:`segment_batch` is the fast path (``batch_size`` images per encoder forward, autocast in the
    precision chosen by the startup check, batched prompt decoding), giving the same masks.
    ``encoder_passes`` counts images through the image encoder; ``last_timing`` holds seconds of the
    last call; ``precision_record`` the startup check's outcome.
    """

    def __init__(
        self,
        model: Any,
        prompt: str = "points",
        model_type: str = "custom",
        auto_options: Mapping[str, Any] | None = None,
        precision: str = DEFAULT_PRECISION,
        batch_size: int | None = None,
    ) -> None:
        from segment_anything import SamPredictor

        if prompt not in PROMPTS:
            raise ValueError(f"unknown SAM prompt {prompt!r}; choose one of {tuple(PROMPTS)}")
        if precision not in PRECISION_CHOICES:
            raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISION_CHOICES}")
        self.model = model.eval()
        self.prompt = prompt
        self.model_type = model_type
        self.name = f"sam_{model_type}_{prompt}"
        self.auto_options = dict(auto_options or {"points_per_side": 16})
        self.predictor = SamPredictor(self.model)
        self.device = next(self.model.parameters()).device
        self.batch_size = int(batch_size or sam_batch_size(self.device))
        self.precision = precision
        #: filled by the first :meth:`segment_batch` (the startup fidelity check); shared with the record
        self.precision_record: dict[str, Any] = {"requested": precision, "precision": None}
        self.encoder_passes = 0
        self.last_timing: dict[str, float] = {}
        self.model.image_encoder.register_forward_hook(self._count_pass)

    def _count_pass(self, _module: Any, _inputs: Any, output: Any) -> None:
        self.encoder_passes += int(output.shape[0])  # one pass per image, batched or not

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

    def encode(self, inputs: list[Any], precision: str = "fp32") -> Any:
        """Image embeddings (float32 ``B x 256 x 64 x 64``) of :func:`sam_input` tensors, ONE forward pass.

        Arguments:
            inputs: uint8 ``3 x h x w`` tensors (long side = the encoder's size; pinned memory is
                copied with ``non_blocking``).
            precision: ``fp32``, ``bf16`` or ``fp16`` (autocast around the image encoder only).
        """
        import torch

        from dfig.accel import autocast

        with torch.inference_mode():
            x = torch.cat(
                [self.model.preprocess(t.to(self.device, non_blocking=True).float()[None]) for t in inputs]
            )
            with autocast(self.device, precision):
                feats = self.model.image_encoder(x)
        return feats.float()

    def segment_batch(self, rgbs: list[np.ndarray], inputs: list[Any] | None = None) -> list[SegResult]:
        """Segment several images: one batched encoder forward (one pass per image), batched prompts.

        The first call on a segmenter with ``precision="auto"`` runs the startup fidelity check
        (:func:`check_sam_precision`) on its images and fills :attr:`precision_record`.

        Arguments:
            rgbs: HxWx3 uint8 RGB images (any sizes).
            inputs: their :func:`sam_input` tensors when already made (e.g. by loader workers).

        Returns:
            One :class:`SegResult` per image, as :meth:`segment` gives (to float tolerance).
        """
        rgbs = [_as_rgb(r) for r in rgbs]
        if inputs is None:
            inputs = [sam_input(r, self.model.image_encoder.img_size) for r in rgbs]
        t0 = time.perf_counter()
        if self.precision_record.get("precision") is None:
            rec, results = check_sam_precision(self, rgbs, inputs, self.precision)
            self.precision_record.update(rec)
        else:
            results = self._encode_decode(rgbs, inputs, self.precision_record["precision"])
        self.last_timing = {"batch_s": time.perf_counter() - t0, "batch": len(rgbs)}
        return results

    def _encode_decode(self, rgbs: list[np.ndarray], inputs: list[Any], precision: str) -> list[SegResult]:
        feats = self.encode(inputs, precision)
        sizes = [(r.shape[:2], tuple(t.shape[-2:])) for r, t in zip(rgbs, inputs)]
        if self.prompt == "auto":
            return [self._auto_one(rgb, feats[i : i + 1], sizes[i]) for i, rgb in enumerate(rgbs)]
        return decode_prompts(self.model, feats, sizes, self.prompt)

    def _auto_one(self, rgb: np.ndarray, feat: Any, size: tuple[Any, Any]) -> SegResult:
        p = self.predictor  # give the predictor this image's embedding (no second encoder pass)
        p.reset_image()
        p.features, p.original_size, p.input_size, p.is_image_set = feat, tuple(size[0]), tuple(size[1]), True
        try:
            return _prompt_auto(self, rgb)
        finally:
            p.reset_image()


#: Images per encoder forward when ``batch_size`` is not given: device type -> batch.
SAM_BATCH_SIZE: dict[str, int] = {"cuda": 8, "cpu": 1}
#: Smallest mask IoU (reduced precision vs fp32, every image of the check) that lets autocast be used.
SAM_MIN_MASK_IOU = 0.99


def sam_batch_size(device: Any) -> int:
    """Default images per encoder forward on ``device`` (:data:`SAM_BATCH_SIZE`; 1 elsewhere)."""
    import torch

    return SAM_BATCH_SIZE.get(torch.device(device).type, 1)


def sam_input(rgb: np.ndarray, target_length: int = 1024) -> Any:
    """The encoder input of one RGB image as ``SamPredictor.set_image`` makes it: uint8 ``3 x h x w``.

    The long side is resized to ``target_length`` (segment-anything's ``ResizeLongestSide``); the
    normalisation and padding happen on the device (``Sam.preprocess``).
    """
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    arr = ResizeLongestSide(target_length).apply_image(_as_rgb(rgb))
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def check_sam_precision(
    seg: SamSegmenter,
    rgbs: list[np.ndarray],
    inputs: list[Any] | None = None,
    requested: str = DEFAULT_PRECISION,
    candidate: str | None = None,
) -> tuple[dict[str, Any], list[SegResult]]:
    """SAM's startup fidelity check: masks under autocast vs fp32 on ``rgbs``; choose the precision.

    ``requested="auto"`` on CUDA tries ``candidate`` (default :func:`dfig.accel.reduced_precision`:
    bf16 where supported, else fp16) and keeps it when every mask has IoU >= :data:`SAM_MIN_MASK_IOU`
    with fp32, else fp32; on CPU fp32 unless ``candidate`` is named. Explicit ``fp32``/``bf16``/
    ``fp16`` are used unchecked (see :func:`dfig.accel.choose_precision`).

    Returns:
        ``(record, results)``: record = :func:`dfig.accel.choose_precision`'s (``agreement`` holds
        ``mask_iou_min``, ``mask_iou_mean``, ``n_images``, ``min_required``, ``passed``) plus
        ``extra_encoder_passes`` (the check's second pass over these images); results = the chosen
        precision's masks for ``rgbs``.
    """
    from dfig.accel import choose_precision

    if inputs is None:
        inputs = [sam_input(r, seg.model.image_encoder.img_size) for r in rgbs]
    before = seg.encoder_passes
    rec, results = choose_precision(
        lambda prec: seg._encode_decode(rgbs, inputs, prec), sam_agreement, seg.device, requested, candidate
    )
    rec["extra_encoder_passes"] = seg.encoder_passes - before - len(rgbs)
    return rec, results


def sam_agreement(ref: list[SegResult], test: list[SegResult]) -> dict[str, Any]:
    """Mask IoU of ``test`` against ``ref`` per image: min, mean, count and ``passed`` (min >= 0.99)."""
    ious = [mask_iou(a.mask, b.mask) for a, b in zip(ref, test)]
    lo = min(ious) if ious else 1.0
    return {
        "mask_iou_min": lo,
        "mask_iou_mean": float(np.mean(ious)) if ious else 1.0,
        "n_images": len(ious),
        "min_required": SAM_MIN_MASK_IOU,
        "passed": lo >= SAM_MIN_MASK_IOU,
    }


def _predict_masks(dec: Any, feats: Any, image_pe: Any, sparse: Any, dense: Any) -> tuple[Any, Any]:
    """``MaskDecoder.predict_masks`` for one prompt per image: B embeddings with B prompts.

    (segment-anything's own version repeats ONE embedding over the prompts; here row i of the
    batch pairs embedding i with prompt i, the same arithmetic without the repeat.)
    """
    import torch

    b = feats.shape[0]
    tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0).unsqueeze(0).expand(b, -1, -1)
    tokens = torch.cat((tokens, sparse), dim=1)
    src = feats + dense
    pos = image_pe.expand(b, -1, -1, -1)
    _, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    mask_tokens = hs[:, 1 : 1 + dec.num_mask_tokens, :]
    up = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack(
        [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1
    )
    _, c2, h2, w2 = up.shape
    masks = (hyper @ up.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
    return masks, dec.iou_prediction_head(hs[:, 0, :])


def _decode(
    model: Any, feats: Any, multimask: bool, points: Any = None, boxes: Any = None, mask_input: Any = None
) -> tuple[Any, Any]:
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    masks, iou = _predict_masks(model.mask_decoder, feats, model.prompt_encoder.get_dense_pe(), sparse, dense)
    sl = slice(1, None) if multimask else slice(0, 1)
    return masks[:, sl], iou[:, sl]


def decode_prompts(model: Any, feats: Any, sizes: list[tuple[Any, Any]], prompt: str) -> list[SegResult]:
    """Masks for the ``points`` or ``box`` prompt of every image at once (fp32 mask decoder).

    Arguments:
        model: the ``Sam``; feats: its embeddings ``B x 256 x 64 x 64``;
        sizes: per image ``(original (H, W), resized input (h, w))``;
        prompt: ``points`` (two points, multimask, then refined with the best low-res logits) or
            ``box`` (:data:`FACE_BOX`), exactly as :data:`PROMPTS` does them one image at a time.
    """
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    tf, dev = ResizeLongestSide(model.image_encoder.img_size), feats.device
    infos: list[dict[str, Any]]
    with torch.inference_mode():
        if prompt == "points":
            pts = [
                tf.apply_coords(np.array(SAM_POINTS_256) * np.array([w / 256.0, h / 256.0]), (h, w))
                for (h, w), _ in sizes
            ]
            coords = torch.as_tensor(np.stack(pts), dtype=torch.float, device=dev)
            labels = torch.ones(coords.shape[:2], dtype=torch.int, device=dev)
            low, iou = _decode(model, feats, True, points=(coords, labels))
            best = iou.argmax(dim=1)
            low, iou = _decode(
                model,
                feats,
                False,
                points=(coords, labels),
                mask_input=low[torch.arange(len(best), device=dev), best][:, None],
            )
            infos = [{"first_pass_best": int(b)} for b in best]
        elif prompt == "box":
            boxes = [face_box(h, w) for (h, w), _ in sizes]
            bt = torch.as_tensor(
                np.stack([tf.apply_boxes(b, s[0])[0] for b, s in zip(boxes, sizes)]),
                dtype=torch.float,
                device=dev,
            )
            low, iou = _decode(model, feats, False, boxes=bt)
            infos = [{"box": b.tolist()} for b in boxes]
        else:
            raise ValueError(f"batched decoding supports the points and box prompts, not {prompt!r}")
        out = []
        for i, (orig, inp) in enumerate(sizes):
            m = model.postprocess_masks(low[i : i + 1], tuple(inp), tuple(orig)) > model.mask_threshold
            out.append(SegResult(m[0, 0].cpu().numpy(), float(iou[i, 0]), infos[i]))
    return out


# ---------------------------------------------------------------------------------------------
# registry and builder


def _sam_builder(
    model_type: str = "vit_h",
    checkpoint: str | os.PathLike[str] | None = None,
    prompt: str = "points",
    device: str = "cpu",
    verify: str = "size",
    allow_fallback: bool | None = None,
    precision: str = DEFAULT_PRECISION,
    batch_size: int | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
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
        seg, rec = _fallback_builder(
            "prior",
            instead_of=f"SAM {model_type} ({prompt} prompt)",
            reason=str(e),
            allow_fallback=allow_fallback,
        )
        return seg, {**rec, "requested": {"method": "sam", "model_type": model_type, "prompt": prompt}}
    model = load_sam(model_type, path, device)
    digest = weights.verify(wname, path)["sha256"] or weights.sha256_file(path)
    seg = SamSegmenter(
        model, prompt=prompt, model_type=model_type, precision=precision, batch_size=batch_size
    )
    rec = {
        "method": "sam",
        "name": seg.name,
        "model_type": model_type,
        "prompt": prompt,
        "device": str(device),
        "batch_size": seg.batch_size,
        "precision": seg.precision_record,  # filled by the first batch
        "weights": {
            "weights": wname,
            "file": path.name,
            "path": str(path),
            "size": path.stat().st_size,
            "sha256": digest,
            "verify": verify,
            "official_size": weights.spec(wname).size == path.stat().st_size,
            "provenance": weights.describe(path),
        },
        "fallback": None,
    }
    if prompt == "auto":
        rec["auto_options"] = {"crop_n_layers": 0, **seg.auto_options}
    return seg, rec


_FALLBACKS: dict[str, tuple[type, str]] = {
    "prior": (
        PriorSegmenter,
        f"aligned-face prior mask (ellipse inscribed in the FFHQ face box {FACE_BOX}, fractions of W/H)",
    ),
    "none": (WholeImageSegmenter, "whole image (no segmentation)"),
}


def _fallback_builder(
    name: str,
    instead_of: str = "SAM face segmentation",
    reason: str = "requested explicitly",
    allow_fallback: bool | None = None,
    **_: Any,
) -> tuple[Segmenter, dict[str, Any]]:
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


def build_segmenter(
    name: str = "sam",
    model_type: str = "vit_h",
    checkpoint: str | os.PathLike[str] | None = None,
    prompt: str = "points",
    device: str = "cpu",
    allow_fallback: bool | None = None,
    verify: str = "size",
    precision: str = DEFAULT_PRECISION,
    batch_size: int | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
    """Build a segmenter and the record to store with its outputs.

    ``sam``: ``checkpoint`` is a file, a folder, or ``None`` (``pretrained/``, ``$DFIG_WEIGHTS``); the
    file is checked by :func:`dfig.weights.locate` (``verify`` = ``"size"``, ``"hash"`` or ``"none"``
    for a non-official file such as a fine-tuned SAM) and loaded strictly. Missing weights in a folder
    -> the ``prior`` fallback (recorded; refused where fallbacks are not allowed, e.g. the paper
    profile). ``prior`` / ``none`` are always recorded as fallbacks.

    ``precision`` (SAM): ``auto`` (default; bf16/fp16 autocast on CUDA when the startup check of
    :func:`check_sam_precision` passes on the first batch, else fp32), ``fp32``, ``bf16``, ``fp16``.
    ``batch_size`` (SAM): images per encoder forward (default :data:`SAM_BATCH_SIZE` of the device).
    The record's ``precision`` entry is filled in by the first batch (chosen dtype, mask IoU).
    """
    if name not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {name!r}; choose one of {tuple(SEGMENTERS)}")
    if name == "sam":
        return _sam_builder(
            model_type=model_type,
            checkpoint=checkpoint,
            prompt=prompt,
            device=device,
            verify=verify,
            allow_fallback=allow_fallback,
            precision=precision,
            batch_size=batch_size,
        )
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


def encode_face(rgb: np.ndarray, face_format: str) -> bytes:
    """A masked face as the faces tree stores it (``predict --raw`` re-encodes through the same path).

    Arguments: ``rgb`` HxWx3 uint8 RGB; ``face_format`` ``png`` (lossless) or ``jpg`` (cv2, quality
    ``JPEG_QUALITY``, as the original). Returns: the encoded file's bytes.
    """
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


def write_face_and_mask(
    rgb: np.ndarray, mask: np.ndarray, face_dest: Path, mask_dest: Path, face_format: str = "png"
) -> None:
    """Write the 0/255 mask PNG, then the masked face (written last: its presence marks the image done)."""
    atomic_write_bytes(mask_dest, _encode_png(mask.astype(np.uint8) * 255))
    atomic_write_bytes(face_dest, encode_face(apply_mask(rgb, mask), face_format))


class _SegInputs:
    """Map-style dataset for loader workers: path -> (index, RGB array, SAM input tensor, error)."""

    def __init__(self, paths: list[Path], target_length: int) -> None:
        self.paths, self.target_length = paths, target_length

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, Any, str | None]:
        try:
            rgb = np.asarray(load_rgb(self.paths[i]))
        except BadImageError as e:
            return i, None, None, e.reason
        return i, rgb, sam_input(rgb, self.target_length) if self.target_length else None, None


def _as_is(item: Any) -> Any:
    return item


def segment_stream(items: list[Any], segmenter: Segmenter, workers: int | None = None) -> Iterator[Any]:
    """Decode and segment images in order: yields ``(item, rgb, SegResult)`` or ``(item, None, reason)``.

    Arguments:
        items: paths, or tuples whose first element is the path (yielded back unchanged).
        segmenter: a :class:`SamSegmenter` runs :meth:`~SamSegmenter.segment_batch` on
            ``segmenter.batch_size`` images at a time; any other segmenter one image at a time.
        workers: DataLoader worker processes that decode (and, for SAM, resize) ahead of the model
            (default :func:`dfig.accel.loader_workers`: 0 on CPU); on CUDA the inputs are pinned.

    A file that cannot be read yields its reason (a string) instead of a result.
    """
    import torch

    from dfig.accel import loader_workers

    sam = isinstance(segmenter, SamSegmenter)
    dev = segmenter.device if sam else torch.device("cpu")
    nw = loader_workers(dev) if workers is None else int(workers)
    paths = [Path(it[0] if isinstance(it, tuple) else it) for it in items]
    ds = _SegInputs(paths, segmenter.model.image_encoder.img_size if sam else 0)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        num_workers=nw,
        collate_fn=_as_is,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if nw else None,
    )
    size = segmenter.batch_size if sam else 1
    buf: list[tuple[int, np.ndarray | None, Any, str | None]] = []
    for item in loader:
        buf.append(item)
        if sum(b[3] is None for b in buf) >= size:
            yield from _segment_buffer(buf, items, segmenter, sam)
            buf = []
    yield from _segment_buffer(buf, items, segmenter, sam)


def _segment_buffer(
    buf: list[tuple[int, np.ndarray | None, Any, str | None]], items: list[Any], segmenter: Any, sam: bool
) -> Iterator[Any]:
    good = [b for b in buf if b[3] is None]
    if not good:
        results = []
    elif sam:
        results = segmenter.segment_batch([b[1] for b in good], [b[2] for b in good])
    else:
        results = [segmenter.segment(b[1]) for b in good]
    by_index = {b[0]: r for b, r in zip(good, results)}
    for i, rgb, _, reason in buf:
        yield (items[i], None, reason) if reason is not None else (items[i], rgb, by_index[i])


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def _check_faces_folder(
    inp: Path, out: Path, rec: Mapping[str, Any], face_format: str, overwrite: bool, shards: int
) -> bool:
    """Refuse to add to a faces folder made differently; with ``overwrite`` clear it (returns True)."""
    old = read_stage_meta(out)
    if old and old.get("stage") != STAGE:
        raise ValueError(
            f"{out} holds the output of another stage ({out / STAGE_META}: stage "
            f"{old.get('stage')!r}); choose an empty or segmentation output folder."
        )
    if overwrite:
        if shards > 1:
            raise ValueError(
                f"--overwrite deletes every face and mask of {out}: it cannot run as one shard "
                "of several (the other shards would lose their work). Run it once without --shard."
            )
        if not old:
            if out.is_dir() and holds_outputs(out, FACE_SUFFIXES):
                raise ValueError(
                    f"{out} holds images but no {STAGE_META}: dfig.stages.segment did not make them, so "
                    "--overwrite does not delete them. Choose an empty --output_dir."
                )
            return False
        clear_outputs(out, FACE_SUFFIXES, (STAGE_META, CSV_NAME))
        from dfig.paths import resolve  # the record holds the portable folder

        old_masks = resolve(old["mask_dir"]) if old.get("mask_dir") else None
        if old_masks is not None and not _inside(old_masks, inp) and not _inside(inp, old_masks):
            clear_outputs(old_masks, (".png",))
        return True
    if not old:
        return False
    a, b = (
        _faces_signature(old.get("segmenter") or {}, old.get("face_format")),
        _faces_signature(rec, face_format),
    )
    if a != b:
        diff = ", ".join(f"{k}: {a[k]!r} there vs {b[k]!r} now" for k in a if a[k] != b[k])
        raise ValueError(
            f"{out} holds faces made by segmenter {a['segmenter']!r} ({diff}): resuming would mix "
            "methods. Use another --output_dir, or rerun with --overwrite (overwrite=True) to delete "
            "those faces and masks and start over."
        )
    return False


def _faces_signature(rec: Mapping[str, Any], face_format: str | None) -> dict[str, Any]:
    """What must match for a resumed run to add to an existing faces folder."""
    return {
        "segmenter": rec.get("name"),
        "weights sha256": (rec.get("weights") or {}).get("sha256"),
        "face format": face_format,
        "auto options": rec.get("auto_options"),
    }


def _resume_scan(
    pairs: list[tuple[Path, Path]],
    out: Path,
    masks: Path,
    old_rows: Mapping[str, Any],
    seg_name: str,
    report: RunReport,
) -> tuple[list[tuple[Path, Path]], dict[str, dict[str, Any]]]:
    """Split ``pairs`` into what is left to do and what is done (face AND mask exist: the face is written last).

    Returns ``(todo, rows)``: rows recovered for done images whose CSV row was lost in a crash (area from
    the mask, score unknown); counts ``report.skipped_existing``.
    """
    todo, rows = [], {}
    for src, dest in pairs:
        rel = dest.relative_to(out).as_posix()
        mpath = masks / Path(rel).with_suffix(".png")
        if not (dest.exists() and mpath.exists()):
            todo.append((src, dest))
            continue
        report.skipped_existing += 1
        if rel not in old_rows:
            m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
            area = float((m > 127).mean()) if m is not None else math.nan
            rows[rel] = {"path": rel, "mask_area": area, "score": math.nan, "segmenter": seg_name}
    return todo, rows


def _segment_and_write(
    todo: list[tuple[Path, Path]],
    segmenter: Segmenter,
    out: Path,
    masks: Path,
    face_format: str,
    policy: str,
    report: RunReport,
    rows: dict[str, dict[str, Any]],
    advance: Any,
) -> None:
    """Segment ``todo`` in order; 2 writer threads encode and write faces and masks beside the model.

    Adds a CSV row per image to ``rows`` (flushed to ``segmentation.csv`` every ``_CSV_FLUSH_EVERY``),
    bad files to ``report`` (or raises under ``strict``); ``advance(n)`` moves the progress bar.
    """
    seg_name = report.extra.get("segmenter", segmenter.name)
    with ThreadPoolExecutor(max_workers=2) as writer:
        pending: list[Future[None]] = []
        for (src, dest), rgb, res in segment_stream(todo, segmenter):
            advance(1)
            if isinstance(res, str):
                if policy == "strict":
                    raise BadImageError(src, res)
                report.fail(src, res)
                continue
            mask = np.asarray(res.mask, dtype=bool)
            rel = dest.relative_to(out).as_posix()
            pending.append(
                writer.submit(
                    write_face_and_mask, rgb, mask, dest, masks / Path(rel).with_suffix(".png"), face_format
                )
            )
            rows[rel] = {
                "path": rel,
                "mask_area": float(mask.mean()),
                "score": float(res.score),
                "segmenter": seg_name,
            }
            report.done += 1
            if len(pending) >= 64:
                pending = drain_done(pending)
            if report.done % _CSV_FLUSH_EVERY == 0:
                _write_csv(out / CSV_NAME, rows)
        for f in pending:
            f.result()


def segment_tree(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    segmenter: Segmenter,
    record: Mapping[str, Any] | None = None,
    face_format: str = "png",
    mask_dir: str | os.PathLike[str] | None = None,
    policy: str = "skip",
    shard: tuple[int, int] | str = (0, 1),
    progress: bool = True,
    overwrite: bool = False,
) -> RunReport:
    """Segment every image under ``input_dir``; write masked faces and masks mirroring its layout.

    Outputs: ``<output_dir>/<rel>.<face_format>`` (background 0; ``png`` lossless by default, ``jpg``
    re-encodes through cv2 at quality 95 as the original), ``<mask_dir>/<rel>.png`` (0/255; default
    :func:`default_mask_dir`), ``<output_dir>/segmentation.csv`` (path, mask_area fraction, score,
    segmenter; merged with earlier rows) and ``<output_dir>/dfig_stage.json``. Every file is written
    atomically; existing faces are skipped (resume). Bad input files are listed in the report
    (``policy="skip"``) or raise :class:`~dfig.data.images.BadImageError` (``"strict"``).
    ``shard=(k, n)`` or ``"k/n"`` takes every n-th file starting at k. A faces folder holds one
    segmenter and format: another is refused unless ``overwrite=True``, which first deletes the faces,
    masks and records this stage made there (never another stage's folder; not with shards). Orphan
    ``.part`` files of a killed run are removed (a shard removes only its own) and counted; the stage
    record merges failures and name collisions across shards and reruns. Returns this run's report.
    """
    from tqdm.auto import tqdm

    if face_format not in FACE_FORMATS:
        raise ValueError(f"face_format must be one of {FACE_FORMATS}, got {face_format!r}")
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    shard = parse_shard(shard)
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    masks = Path(mask_dir).resolve() if mask_dir is not None else default_mask_dir(out)
    plan = plan_tree(
        inp,
        out,
        "." + face_format,
        shard=shard,
        overwrite=True,  # all pairs; split below
        also_outputs=(masks,),
    )
    if _inside(masks, inp) or _inside(masks, out) or _inside(out, masks):
        raise ValueError(
            f"mask folder {masks} must lie outside the input folder {inp} and the faces "
            f"folder {out} (and not contain it): choose another --mask_dir"
        )
    rec = dict(record) if record is not None else {"name": segmenter.name}
    seg_name = rec.setdefault("name", segmenter.name)
    if _check_faces_folder(inp, out, rec, face_format, overwrite, shard[1]):
        plan = plan_tree(inp, out, "." + face_format, shard=shard, overwrite=True, also_outputs=(masks,))

    report = RunReport(STAGE, extra={"segmenter": seg_name, "shard": f"{shard[0]}/{shard[1]}"})
    plan.report_refused(report)
    csv_path = out / CSV_NAME
    old_rows = _read_csv(csv_path)
    todo, new_rows = _resume_scan(plan.todo, out, masks, old_rows, seg_name, report)

    meta = {
        "stage": STAGE,
        "segmenter": rec,
        "face_format": face_format,
        "jpeg_quality": JPEG_QUALITY if face_format == "jpg" else None,
        "background": 0,
        "mask_dir": str(masks),
        "csv": CSV_NAME,
        "input_dir": str(inp),
        "input": read_stage_meta(inp),
    }
    if meta["input"].get("synthetic"):
        meta["synthetic"] = True
    report.removed_part_files = remove_orphans(plan, out, shard[1], mirrors=[(masks, ".png")])
    update_stage_meta(out, lambda old: {**meta, "counts": old.get("counts")})

    bar = tqdm(total=len(todo), desc=f"segment [{seg_name}]", disable=not progress, unit="img")
    try:
        _segment_and_write(todo, segmenter, out, masks, face_format, policy, report, new_rows, bar.update)
    finally:
        bar.close()

    if new_rows or not csv_path.exists():
        _write_csv(csv_path, new_rows)
    record_run(out, plan, report, {"faces_in_csv": len(_read_csv(csv_path)), "this_run": report.to_dict()})
    return report


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m dfig.segment``: segment a dataset tree (as the original SAM.py was used)."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.segment",
        description="Face masks with SAM (or a labelled fallback) over a dataset tree.",
    )
    ap.add_argument("--input_dir", required=True, help="raw images, {split}/{class}/* or a flat folder")
    ap.add_argument("--output_dir", required=True, help="masked faces (mirrors the input tree)")
    ap.add_argument(
        "--segmenter",
        default="sam",
        choices=tuple(SEGMENTERS),
        help="sam (default) or a fallback: prior (aligned-face ellipse), none (whole image)",
    )
    ap.add_argument("--model_type", default="vit_h", choices=SAM_MODEL_TYPES)
    ap.add_argument(
        "--checkpoint", default=None, help="SAM file or folder (default: pretrained/ or $DFIG_WEIGHTS)"
    )
    ap.add_argument(
        "--verify",
        default="size",
        choices=("none", "size", "hash"),
        help="how the SAM file is checked (none: a non-official file, e.g. fine-tuned)",
    )
    ap.add_argument("--prompt", default="points", choices=tuple(PROMPTS))
    ap.add_argument(
        "--face_format",
        default="png",
        choices=FACE_FORMATS,
        help="png (lossless, default) or jpg (the original: cv2 JPEG quality 95)",
    )
    ap.add_argument(
        "--mask_dir", default=None, help="default: <parent>/masks for .../faces, else <output_dir>_masks"
    )
    ap.add_argument("--shard", default="0/1", help="K/N: this process takes every N-th file from K")
    ap.add_argument("--policy", default="skip", choices=BAD_FILE_POLICIES, help="bad input files")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISION_CHOICES,
        help="SAM encoder: auto = bf16/fp16 on CUDA if the startup mask check passes, else fp32",
    )
    ap.add_argument(
        "--batch_size", type=int, default=None, help="SAM images per encoder pass (default: 8 CUDA, 1 CPU)"
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the faces, masks and records already in --output_dir first (needed to "
        "change the segmenter, its weights or the face format there)",
    )
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    from dfig.fallback import FallbackNotAllowed

    try:
        seg, rec = build_segmenter(
            a.segmenter,
            model_type=a.model_type,
            checkpoint=a.checkpoint,
            prompt=a.prompt,
            device=a.device,
            verify=a.verify,
            precision=a.precision,
            batch_size=a.batch_size,
        )
    except (FallbackNotAllowed, MissingWeightsError, WrongWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    w = rec.get("weights")
    print(
        f"segmenter: {rec['name']}"
        + (f" ({w['path']}, sha256 {str(w['sha256'])[:16]})" if w else "")
        + (f"  FALLBACK: {rec['fallback']['reason']}" if rec.get("fallback") else "")
    )
    try:
        report = segment_tree(
            a.input_dir,
            a.output_dir,
            seg,
            record=rec,
            face_format=a.face_format,
            mask_dir=a.mask_dir,
            policy=a.policy,
            shard=parse_shard(a.shard),
            progress=not a.no_progress,
            overwrite=a.overwrite,
        )
    except (BadImageError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    out = Path(a.output_dir)
    print(
        f"faces: {out}  masks: {Path(a.mask_dir) if a.mask_dir else default_mask_dir(out.resolve())}  "
        f"table: {out / CSV_NAME}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "encode_face",
    "SAM_BATCH_SIZE",
    "SAM_MIN_MASK_IOU",
    "sam_batch_size",
    "sam_input",
    "mask_iou",
    "check_sam_precision",
    "sam_agreement",
    "decode_prompts",
    "segment_stream",
    "write_face_and_mask",
    "SEGMENTERS",
    "PROMPTS",
    "FACE_BOX",
    "SAM_POINTS_256",
    "SAM_MODEL_TYPES",
    "FACE_FORMATS",
    "SegResult",
    "Segmenter",
    "SamSegmenter",
    "PriorSegmenter",
    "WholeImageSegmenter",
    "build_segmenter",
    "load_sam",
    "prior_mask",
    "face_box",
    "apply_mask",
    "default_mask_dir",
    "segment_tree",
    "main",
]
