"""The labelled fallback segmenters: ``prior`` (aligned-face ellipse) and ``none`` (whole image)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dfig.fallback import use_fallback
from dfig.stages.segment.base import FACE_BOX, STAGE, Segmenter, SegResult, as_rgb, prior_mask


class PriorSegmenter:
    """Aligned-face prior (ellipse in :data:`FACE_BOX`, scaled to the image); no model, score NaN."""

    name = "prior"

    def segment(self, rgb: np.ndarray) -> SegResult:
        h, w = as_rgb(rgb).shape[:2]
        return SegResult(prior_mask(h, w), math.nan)


class WholeImageSegmenter:
    """No segmentation: the whole image is the mask; score NaN."""

    name = "none"

    def segment(self, rgb: np.ndarray) -> SegResult:
        h, w = as_rgb(rgb).shape[:2]
        return SegResult(np.ones((h, w), dtype=bool), math.nan)


_FALLBACKS: dict[str, tuple[type, str]] = {
    "prior": (
        PriorSegmenter,
        f"aligned-face prior mask (ellipse inscribed in the FFHQ face box {FACE_BOX}, fractions of W/H)",
    ),
    "none": (WholeImageSegmenter, "whole image (no segmentation)"),
}


def fallback_builder(
    name: str,
    instead_of: str = "SAM face segmentation",
    reason: str = "requested explicitly",
    allow_fallback: bool | None = None,
    **_: Any,
) -> tuple[Segmenter, dict[str, Any]]:
    """Build the fallback segmenter ``name`` (``prior`` / ``none``), labelled through
    :func:`dfig.fallback.use_fallback` (refused where fallbacks are not allowed).

    Arguments: ``instead_of``/``reason`` for the fallback record. Returns ``(segmenter, record)``.
    """
    cls, desc = _FALLBACKS[name]
    fb = use_fallback(STAGE, f"{name}: {desc}", instead_of, reason, allowed=allow_fallback)
    rec: dict[str, Any] = {"method": name, "name": name, "description": desc, "fallback": fb}
    if name == "prior":
        rec["face_box"] = list(FACE_BOX)
    return cls(), rec


__all__ = ["PriorSegmenter", "WholeImageSegmenter", "fallback_builder"]
