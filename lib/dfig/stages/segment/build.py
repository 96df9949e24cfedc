"""The segmenter registry (:data:`SEGMENTERS`) and :func:`build_segmenter`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dfig.accel import DEFAULT_PRECISION
from dfig.stages.segment.base import Segmenter
from dfig.stages.segment.fallbacks import fallback_builder
from dfig.stages.segment.sam import sam_builder

#: Segmenter name -> builder(**options) -> (segmenter, record). ``prior``/``none`` are fallbacks.
SEGMENTERS: dict[str, Callable[..., tuple[Segmenter, dict[str, Any]]]] = {
    "sam": sam_builder,
    "prior": lambda **kw: fallback_builder("prior", **kw),
    "none": lambda **kw: fallback_builder("none", **kw),
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
        return sam_builder(
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


__all__ = ["SEGMENTERS", "build_segmenter"]
