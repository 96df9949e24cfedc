"""The splits of a feature tree a detector trains on (or a classical peer fits on): ``train``, ``val``
and, when present, ``test``, each ``{real,fake}/*`` (optionally one class subfolder). Shared by
:mod:`dfig.stages.train` and :mod:`dfig.stages.peers`, which import no other stage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: suffixes of the files a detector reads (images of a feature tree, clean LNP arrays)
SAMPLE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy")


def split_samples(dataroot: str | os.PathLike[str], classes: str = "") -> dict[str, list[Any]]:
    """Samples of the ``train`` and ``val`` (and, when present, ``test``) splits of ``dataroot``."""
    from dfig.data.layout import discover, split_dir

    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--dataroot {root}: no such folder; give the LNP tree dfig.stages.lnp wrote, laid out "
            "as {train,val|valid,test}/{real,fake}/*"
        )
    cls = [c for c in (classes or "").split(",") if c and c.lower() not in ("face", "faces")]
    if len(cls) > 1:
        raise ValueError(
            f"--classes {classes!r}: DFIG trains on one class; give '' or 'face' or one subfolder"
        )
    out = {}
    for split in ("train", "val", "test"):
        split_root = split_dir(root, split) / cls[0] if cls else split_dir(root, split)
        if split == "test" and not split_root.is_dir():
            continue
        if cls:
            # discover() expects ROOT/<split>/{real,fake}: point it at a view of one class subfolder
            out[split] = _discover_class(root, split, cls[0])
        else:
            out[split] = discover(root, splits=(split,), exts=SAMPLE_EXTS)[split]
        if not out[split]:
            raise FileNotFoundError(f"{split_root}: no images (.png/.jpg/.npy) found in real/ and fake/")
    return out


def _discover_class(root: Path, split: str, cls: str) -> list[Any]:
    from dfig.data.layout import CLASS_DIRS, CLASS_NAMES, Sample, list_images, split_dir

    base = split_dir(root, split) / cls
    found = [(base / d, lab) for d, lab in CLASS_DIRS.items() if (base / d).is_dir()]
    if {lab for _, lab in found} != {0, 1}:
        raise FileNotFoundError(f"{base}: expected class folders 'real' and 'fake' (or '0_real'/'1_fake')")
    return sorted(
        (Sample(p, lab, split, CLASS_NAMES[lab]) for d, lab in found for p in list_images(d, SAMPLE_EXTS)),
        key=lambda s: str(s.path),
    )


__all__ = ["SAMPLE_EXTS", "split_samples"]
