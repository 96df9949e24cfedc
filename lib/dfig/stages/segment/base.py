"""What every segmenter shares: constants, the result type, the aligned-face geometry, masking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

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


@dataclass
class SegResult:
    """A face mask (bool HxW, True = face) and the segmenter's confidence (NaN where it has none)."""

    mask: np.ndarray
    score: float
    info: dict[str, Any] = field(default_factory=dict)


class Segmenter(Protocol):
    name: str

    def segment(self, rgb: np.ndarray) -> SegResult: ...


def as_rgb(rgb: Any) -> np.ndarray:
    """``rgb`` as an array, checked to be HxWx3 uint8 (``ValueError`` otherwise). Returns the array."""
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


__all__ = [
    "STAGE",
    "CSV_NAME",
    "CSV_FIELDS",
    "FACE_FORMATS",
    "SAM_MODEL_TYPES",
    "FACE_SUFFIXES",
    "JPEG_QUALITY",
    "SAM_POINTS_256",
    "FACE_BOX",
    "SegResult",
    "Segmenter",
    "as_rgb",
    "face_box",
    "prior_mask",
    "apply_mask",
]
