"""What segmentation writes: masked faces (PNG / cv2 JPEG), 0/255 masks, ``segmentation.csv``."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dfig.io import atomic_write_bytes, atomic_write_text
from dfig.stages.segment.base import CSV_FIELDS, JPEG_QUALITY, apply_mask


def default_mask_dir(output_dir: str | os.PathLike[str]) -> Path:
    """``<parent>/masks`` when ``output_dir`` is named ``faces``, else ``<output_dir>_masks`` (a sibling).

    Masks never go inside the faces tree, so the next stage (LNP) does not mistake them for faces.
    """
    out = Path(output_dir)
    return out.parent / "masks" if out.name == "faces" else out.with_name(out.name + "_masks")


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of ``arr`` as ``cv2.imwrite`` writes them."""
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
    return encode_png(bgr)


def read_csv(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of ``segmentation.csv`` by path (empty when the file does not exist)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {r["path"]: r for r in csv.DictReader(f) if r.get("path")}


def write_csv(path: Path, rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge ``rows`` into the CSV on disk (re-read just before writing), write atomically."""
    merged = {**read_csv(path), **{k: dict(v) for k, v in rows.items()}}
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
    atomic_write_bytes(mask_dest, encode_png(mask.astype(np.uint8) * 255))
    atomic_write_bytes(face_dest, encode_face(apply_mask(rgb, mask), face_format))


__all__ = ["default_mask_dir", "encode_png", "encode_face", "read_csv", "write_csv", "write_face_and_mask"]
