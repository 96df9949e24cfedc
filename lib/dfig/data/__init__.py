"""Dataset layout, labels, robust image loading, transforms, loaders and the synthetic dataset."""

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

__all__ = [
    "BAD_FILE_POLICIES", "BadImageError", "check_files", "load_rgb",
    "CLASS_DIRS", "IMAGE_EXTS", "LNP_EXTS", "SPLITS", "Sample", "discover", "list_images",
    "mirror_path", "summarize",
]
