"""Dataset layout: ``ROOT/{train,val,test}/{real,fake}/*`` (or ``0_real``/``1_fake``), explicit labels.

Labels are explicit: real = 0, fake = 1. (torchvision's ImageFolder sorts class folders
alphabetically, which would make ``fake`` = 0: never used here.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dfig.treepaths import IMAGE_EXTS, LNP_EXTS, list_images, mirror_path, tree_relpath

SPLITS: tuple[str, ...] = ("train", "val", "test")
CLASS_DIRS: dict[str, int] = {"real": 0, "fake": 1, "0_real": 0, "1_fake": 1}
CLASS_NAMES: dict[int, str] = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class Sample:
    """One labelled file: ``label`` 0 = real, 1 = fake; ``cls`` the canonical class name."""

    path: Path
    label: int
    split: str
    cls: str


def _class_dirs(split_dir: Path) -> list[tuple[Path, int]]:
    found = [(split_dir / d, lab) for d, lab in CLASS_DIRS.items() if (split_dir / d).is_dir()]
    labels = {lab for _, lab in found}
    if labels != {0, 1}:
        have = sorted(p.name for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []
        raise FileNotFoundError(
            f"{split_dir}: expected class folders 'real' and 'fake' (or '0_real' and '1_fake'), "
            f"found {have or 'none'}. Arrange the data as ROOT/{{train,val,test}}/{{real,fake}}/*."
        )
    return found


def discover(
    root: str | os.PathLike[str], splits: Iterable[str] = SPLITS, exts: Iterable[str] = IMAGE_EXTS
) -> dict[str, list[Sample]]:
    """Find the labelled files of each split under ``root``; deterministic order (by path)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    out: dict[str, list[Sample]] = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(
                f"{split_dir}: split folder missing. Expected {root}/{{{','.join(splits)}}}/{{real,fake}}/*"
            )
        samples = []
        for cdir, label in _class_dirs(split_dir):
            samples += [Sample(p, label, split, CLASS_NAMES[label]) for p in list_images(cdir, exts)]
        out[split] = sorted(samples, key=lambda s: str(s.path))
    return out


def summarize(
    root: str | os.PathLike[str],
    splits: Iterable[str] = SPLITS,
    exts: Iterable[str] = IMAGE_EXTS,
    sizes: bool = True,
):
    """A table of counts per split and class (and the image sizes seen) for a dataset tree."""
    import pandas as pd
    from PIL import Image

    rows = []
    for split, samples in discover(root, splits, exts).items():
        for label in (0, 1):
            sel = [s for s in samples if s.label == label]
            row = {"split": split, "class": CLASS_NAMES[label], "label": label, "count": len(sel)}
            if sizes:
                seen: dict[str, int] = {}
                for s in sel:
                    try:
                        if s.path.suffix.lower() == ".npy":
                            import numpy as np

                            shp = np.load(s.path, mmap_mode="r").shape
                            key = f"{shp[1]}x{shp[0]}"
                        else:
                            with Image.open(s.path) as im:
                                key = f"{im.size[0]}x{im.size[1]}"
                    except (OSError, ValueError):
                        key = "unreadable"
                    seen[key] = seen.get(key, 0) + 1
                row["sizes"] = ", ".join(f"{k} ({v})" for k, v in sorted(seen.items(), key=lambda kv: -kv[1]))
            rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "CLASS_DIRS",
    "CLASS_NAMES",
    "IMAGE_EXTS",
    "LNP_EXTS",
    "SPLITS",
    "Sample",
    "discover",
    "list_images",
    "mirror_path",
    "summarize",
    "tree_relpath",
]
