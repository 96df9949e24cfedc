"""Dataset layout: ``ROOT/{train,val,test}/{real,fake}/*`` (or ``0_real``/``1_fake``), explicit labels.

The validation split may be named ``valid`` (as the Kaggle download of the 140k collection has it):
:func:`split_dir` finds it; samples are always labelled with the canonical name ``val``.
:func:`find_data_root` finds the one tree below a download's top folder. Labels are explicit: real = 0, fake = 1. (torchvision's ImageFolder sorts class folders
alphabetically, which would make ``fake`` = 0: never used here.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dfig.treepaths import IMAGE_EXTS, LNP_EXTS, list_images, mirror_path, tree_relpath

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: the folder names accepted for each canonical split, in order of preference
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}
#: how messages write the layout
LAYOUT_TEXT = "{train,val|valid,test}/{real,fake}/*"
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
            f"found {have or 'none'}. Arrange the data as ROOT/{LAYOUT_TEXT}."
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
        folder = split_dir(root, split)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: split folder missing. Expected {root}/{{{','.join(splits)}}}/{{real,fake}}/* "
                "(the validation split may be named val or valid)"
            )
        samples = []
        for cdir, label in _class_dirs(folder):
            samples += [Sample(p, label, split, CLASS_NAMES[label]) for p in list_images(cdir, exts)]
        out[split] = sorted(samples, key=lambda s: str(s.path))
    return out


def split_dir(root: str | os.PathLike[str], split: str) -> Path:
    """The folder of ``split`` under ``root``: the first of its names (:data:`SPLIT_ALIASES`) present.

    Arguments: ``root`` a dataset tree; ``split`` a canonical split (``train``, ``val``, ``test``) or
    any other folder name. Returns ``root/<name>``, or ``root/<split>`` when none exists (for messages).
    Raises ``ValueError`` when two names of one split both exist (``val/`` and ``valid/``).
    """
    root = Path(root)
    found = [root / n for n in SPLIT_ALIASES.get(split, (split,)) if (root / n).is_dir()]
    if len(found) > 1:
        raise ValueError(
            f"{root}: both {found[0].name}/ and {found[1].name}/ exist, so the {split} split is ambiguous: "
            "keep one of them (move the other out of the tree)"
        )
    return found[0] if found else root / split


def is_data_root(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a ``train/`` folder and a validation folder (``val/`` or ``valid/``)."""
    folder = Path(folder)
    return (folder / "train").is_dir() and any((folder / n).is_dir() for n in SPLIT_ALIASES["val"])


def find_data_root(path: str | os.PathLike[str], max_depth: int = 3) -> tuple[Path, str]:
    """The dataset tree at or below ``path``: a download's top folder finds the one tree inside it.

    Arguments: ``path`` a folder; ``max_depth`` how many levels below it are searched (hidden folders
    and the inside of a found tree are never entered). Returns ``(root, note)``: ``path`` itself with
    note ``""`` when it holds a ``train/`` folder, else the single folder below that holds ``train/``
    and ``val/`` or ``valid/``, with a note saying which folder is used. Nothing is written or renamed.
    Raises ``FileNotFoundError`` when ``path`` is no folder or holds no such tree, ``ValueError`` when
    it holds several (naming two of them).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such data folder (expected a tree {LAYOUT_TEXT})")
    if (path / "train").is_dir():
        return path, ""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(path, followlinks=True):
        here = Path(dirpath)
        if here != path and is_data_root(here):
            found.append(here)
            dirnames[:] = []
            continue
        depth = len(here.relative_to(path).parts)
        dirnames[:] = [] if depth >= max_depth else sorted(d for d in dirnames if not d.startswith("."))
    if not found:
        raise FileNotFoundError(
            f"{path}: no dataset tree {LAYOUT_TEXT} in it or up to {max_depth} folders below; "
            "point --data at the folder that holds train/ and val/ (or valid/)"
        )
    if len(found) > 1:
        raise ValueError(
            f"{path}: {len(found)} dataset trees below it, e.g. {found[0]} and {found[1]}: "
            "pass the one to use as --data"
        )
    return found[0], f"data: using {found[0]} (the one {LAYOUT_TEXT} tree under {path})"


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
    "LAYOUT_TEXT",
    "LNP_EXTS",
    "SPLITS",
    "SPLIT_ALIASES",
    "Sample",
    "discover",
    "find_data_root",
    "is_data_root",
    "list_images",
    "mirror_path",
    "split_dir",
    "summarize",
    "tree_relpath",
]
