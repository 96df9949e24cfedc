"""LNP files: the two save modes (encoding, decoding) and reading the denoiser's inputs.

See :mod:`dfig.stages.lnp` for the save modes' arithmetic (``compat`` PNG, ``clean`` float16 ``.npy``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig.data.images import BadImageError, load_rgb, read_lnp
from dfig.io import atomic_write_bytes

SAVE_MODES: tuple[str, ...] = ("compat", "clean")
SUFFIX: dict[str, str] = {"compat": ".png", "clean": ".npy"}
CHANNEL_ORDER: dict[str, str] = {"compat": "BGR", "clean": "RGB"}
MAX_BATCH_PIXELS = 16 * 256 * 256
VALUE_SCALE: dict[str, str] = {
    "compat": "PNG uint8 = (256 - rint(255*clamp(r,0,1))) % 256 (original DFIG arithmetic); "
    "read_lnp gives RGB uint8/255",
    "clean": "float16 .npy, HxWx3 RGB, signed residual r = x - denoised in image units ([0,1] scale)",
}


def compat_encode(residual: np.ndarray) -> np.ndarray:
    """The original script's arithmetic: ``clamp(r,0,1)`` -> ``img_as_ubyte`` -> ``* 255`` in uint8.

    ``img_as_ubyte`` on float input computes ``rint(r * 255)`` in float32, clips and casts to uint8;
    the following ``* 255`` stays uint8 and wraps modulo 256. Returns an HxWx3 uint8 array.
    """
    r = np.clip(np.asarray(residual, dtype=np.float32), 0.0, 1.0)
    u8 = np.clip(np.rint(np.multiply(r, 255, dtype=np.float32)), 0, 255).astype(np.uint8)
    return u8 * np.uint8(255)  # uint8 wraparound, as in the original `denoised_img * 255`


def compat_png_bytes(residual: np.ndarray) -> bytes:
    """PNG bytes of :func:`compat_encode` as ``cv2.imwrite`` writes them (default parameters)."""
    import cv2

    ok, buf = cv2.imencode(".png", compat_encode(residual))
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode the LNP as PNG")
    return buf.tobytes()


def clean_npy_bytes(residual: np.ndarray) -> bytes:
    """``.npy`` bytes of the signed residual as float16 (HxWx3)."""
    bio = io.BytesIO()
    np.save(bio, np.asarray(residual, dtype=np.float16), allow_pickle=False)
    return bio.getvalue()


def lnp_to_file(residual: np.ndarray, dest: str | os.PathLike[str], save_mode: str = "compat") -> Path:
    """Write one residual (HxWx3 float, channel order as computed) atomically in ``save_mode``."""
    if save_mode not in SAVE_MODES:
        raise ValueError(f"save_mode must be one of {SAVE_MODES}, got {save_mode!r}")
    data = compat_png_bytes(residual) if save_mode == "compat" else clean_npy_bytes(residual)
    return atomic_write_bytes(dest, data)


# ---------------------------------------------------------------------------------------------
# reading inputs


def read_input(path: Path, save_mode: str) -> np.ndarray:
    """HxWx3 uint8 in the channel order the denoiser gets: BGR via cv2 (compat), RGB via PIL (clean).

    Every mode first decodes the whole file with :func:`dfig.data.load_rgb`, so that a truncated, empty
    or broken file is rejected exactly as in the clean mode and segmentation (``cv2.imread`` alone
    fills the missing part of a truncated JPEG with grey). Compat then takes the pixels from
    ``cv2.imread`` (the original script's decoder), or PIL's where OpenCV cannot read the format.
    Raises :class:`BadImageError` naming the file when it cannot be decoded.
    """
    rgb = np.asarray(load_rgb(path))
    if save_mode == "compat":
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return img if img is not None else np.ascontiguousarray(rgb[:, :, ::-1])
    return rgb


class _Inputs:
    """Map-style dataset for loader workers: index -> (index, image or None, reason or None)."""

    def __init__(self, items: list[tuple[Path, Path]], save_mode: str) -> None:
        self.items, self.save_mode = items, save_mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, read_input(self.items[i][0], self.save_mode), None
        except BadImageError as e:
            return i, None, e.reason


def _as_is(item: Any) -> Any:
    return item


def read_inputs(
    items: list[tuple[Path, Path]], save_mode: str, workers: int = 0
) -> Iterator[tuple[Path, Path, np.ndarray | str]]:
    """Decode inputs in order, ``workers`` processes ahead of the caller (0: in this process).

    Yields ``(src, dest, image)`` (HxWx3 uint8, see :func:`read_input`) or ``(src, dest, reason)``
    for a file that cannot be read.
    """
    loader = torch.utils.data.DataLoader(
        _Inputs(items, save_mode),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=4 if workers else None,
    )
    for i, img, reason in loader:
        yield items[i][0], items[i][1], img if reason is None else reason


__all__ = [
    "SAVE_MODES",
    "SUFFIX",
    "CHANNEL_ORDER",
    "MAX_BATCH_PIXELS",
    "VALUE_SCALE",
    "compat_encode",
    "compat_png_bytes",
    "clean_npy_bytes",
    "lnp_to_file",
    "read_lnp",
    "read_input",
    "read_inputs",
]
