"""Dataset layout, labels, robust image loading, transforms, loaders and the synthetic dataset.

``layout`` and ``images`` are imported eagerly (light); the torch-based ``transforms``/``dataset``
and ``synthetic`` names load on first use, so ``import dfig.data`` stays cheap for CLI tools.
"""

from __future__ import annotations

import importlib
from typing import Any

from dfig.data.images import BAD_FILE_POLICIES, BadImageError, check_files, load_rgb
from dfig.data.layout import (
    CLASS_DIRS,
    IMAGE_EXTS,
    LNP_EXTS,
    SPLITS,
    Sample,
    discover,
    list_images,
    mirror_path,
    summarize,
)

_LAZY = {
    "AugmentOptions": "transforms",
    "build_transform": "transforms",
    "perturb": "transforms",
    "PERTURBATIONS": "transforms",
    "NORMALIZATIONS": "transforms",
    "ImageDataset": "dataset",
    "load_sample_image": "dataset",
    "make_loader": "dataset",
    "class_balance": "dataset",
    "generate_synthetic": "synthetic",
    "is_synthetic": "synthetic",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(f"dfig.data.{_LAZY[name]}")
        return getattr(mod, "generate" if name == "generate_synthetic" else name)
    raise AttributeError(f"module 'dfig.data' has no attribute {name!r}")


__all__ = [
    "BAD_FILE_POLICIES",
    "BadImageError",
    "check_files",
    "load_rgb",
    "CLASS_DIRS",
    "IMAGE_EXTS",
    "LNP_EXTS",
    "SPLITS",
    "Sample",
    "discover",
    "list_images",
    "mirror_path",
    "summarize",
    *_LAZY,
]
