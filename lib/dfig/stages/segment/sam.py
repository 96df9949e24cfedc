"""SAM: strict loading, the segmenter (one encoder pass per image, batched), the precision check."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dfig import weights
from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES
from dfig.stages.segment.base import SAM_MODEL_TYPES, Segmenter, SegResult, as_rgb
from dfig.stages.segment.fallbacks import fallback_builder
from dfig.stages.segment.prompts import PROMPTS, decode_prompts, prompt_auto
from dfig.weights import MissingWeightsError


def load_sam(model_type: str, checkpoint: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Build SAM ``model_type`` and load ``checkpoint`` on CPU, strictly (every key, every shape).

    Raises :class:`dfig.weights.WrongWeightsError` naming the file and listing missing/unexpected keys.
    """
    import torch
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {SAM_MODEL_TYPES}")
    path = Path(checkpoint)
    sd = weights.load_checkpoint(path)
    sam = sam_model_registry[model_type](checkpoint=None)
    hint = (
        f"Check that --model_type ({model_type}) matches the file (sam_vit_h_4b8939.pth = vit_h, "
        "sam_vit_l_0b3195.pth = vit_l, sam_vit_b_01ec64.pth = vit_b)."
    )
    weights.check_state_dict(sam, sd, source=path, hint=hint)
    sam.load_state_dict(sd, strict=True)
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
        rgb = as_rgb(rgb)
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
        rgbs = [as_rgb(r) for r in rgbs]
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
            return prompt_auto(self, rgb)
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

    arr = ResizeLongestSide(target_length).apply_image(as_rgb(rgb))
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


def _weights_record(wname: str, path: Path, verify: str) -> dict[str, Any]:
    """The record of the SAM file used: name, path, size, SHA-256, how it was checked, provenance."""
    from dfig import weights

    return {
        "weights": wname,
        "file": path.name,
        "path": str(path),
        "size": path.stat().st_size,
        "sha256": weights.verify(wname, path)["sha256"] or weights.sha256_file(path),
        "verify": verify,
        "official_size": weights.spec(wname).size == path.stat().st_size,
        "provenance": weights.describe(path),
    }


def sam_builder(
    model_type: str = "vit_h",
    checkpoint: str | os.PathLike[str] | None = None,
    prompt: str = "points",
    device: str = "cpu",
    verify: str = "size",
    allow_fallback: bool | None = None,
    precision: str = DEFAULT_PRECISION,
    batch_size: int | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
    """Build the ``sam`` segmenter and its record (see :func:`dfig.stages.segment.build_segmenter`).

    Returns ``(segmenter, record)``; weights missing from a folder -> the labelled ``prior`` fallback.
    """
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
        seg, rec = fallback_builder(
            "prior",
            instead_of=f"SAM {model_type} ({prompt} prompt)",
            reason=str(e),
            allow_fallback=allow_fallback,
        )
        return seg, {**rec, "requested": {"method": "sam", "model_type": model_type, "prompt": prompt}}
    model = load_sam(model_type, path, device)
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
        "weights": _weights_record(wname, path, verify),
        "fallback": None,
    }
    if prompt == "auto":
        rec["auto_options"] = {"crop_n_layers": 0, **seg.auto_options}
    return seg, rec


__all__ = [
    "load_sam",
    "SamSegmenter",
    "SAM_BATCH_SIZE",
    "SAM_MIN_MASK_IOU",
    "sam_batch_size",
    "sam_input",
    "mask_iou",
    "check_sam_precision",
    "sam_agreement",
    "sam_builder",
]
