"""The training reader, the labelled image dataset and seeded data loaders.

Bad-file policy of :class:`ImageDataset` (``policy``, see :mod:`dfig.data.images`): by default
(``precheck=True``) every file is read once, fully, with the dataset's reader when the dataset is
created. Bad files are then left out (``skip``: counted and listed by name in ``dataset.report``, a
:class:`~dfig.runlog.RunReport` the training run merges into its report) or raise
:class:`BadImageError` naming the file (``strict``). This costs one extra decode per file (about
1-2 ms for a 256 px image, a few minutes for 100k files on one core) but guarantees that every bad
file is known and reported *before* training, that every batch has its full size, and that nothing
depends on which DataLoader worker met the file. ``precheck=False`` skips that pass (for trees a dfig
stage wrote atomically, e.g. LNPs); a bad file found later then raises :class:`BadImageError` under
``strict``, and under ``skip`` is replaced by the next good sample, warned about and recorded in
``dataset.report`` (with ``workers > 0`` only the warning, printed by the worker, reaches the user:
use ``precheck=True`` when the run report must be complete).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dfig.data.images import BAD_FILE_POLICIES, BadImageError, check_budget, load_rgb
from dfig.data.layout import CLASS_NAMES, Sample
from dfig.progress import tqdm
from dfig.runlog import RunReport

Reader = Callable[[str | os.PathLike[str]], Any]


def load_sample_image(path: str | os.PathLike[str]) -> Image.Image | np.ndarray:
    """The training reader: ``.npy`` -> float32 HxWx3 array (clean LNP); anything else -> RGB PIL image.

    PNG/JPEG come back as PIL images (via :func:`load_rgb`) so that the PIL transforms and the JPEG
    augmentation apply. Raises :class:`BadImageError` naming the file for an empty, corrupt,
    wrongly shaped or non-finite ``.npy``, and for every bad image (see :func:`load_rgb`).
    """
    p = Path(path)
    if p.suffix.lower() != ".npy":
        return load_rgb(p)
    if p.is_dir():
        raise BadImageError(p, "is a directory, not an array file")
    try:
        if p.stat().st_size == 0:
            raise BadImageError(p, "is an empty (0-byte) file")
        head = np.load(p, mmap_mode="r", allow_pickle=False).shape  # the header only
        if len(head) == 3:
            h, w = head[1:] if head[0] == 3 and head[2] != 3 else head[:2]
            check_budget(p, int(w), int(h))
        arr = np.load(p, allow_pickle=False)
    except BadImageError:
        raise
    except PermissionError as e:
        raise BadImageError(p, "cannot be read (permission denied)") from e
    except (OSError, ValueError, EOFError) as e:
        raise BadImageError(p, f"is not a valid .npy array file ({e})") from e
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[2] != 3:
        arr = arr.transpose(1, 2, 0)  # CxHxW written by torch code -> HxWxC
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadImageError(p, f"holds an array of shape {arr.shape}, expected HxWx3")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise BadImageError(p, f"holds dtype {arr.dtype}, expected a real numeric array")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise BadImageError(p, "holds NaN or infinite values")
    return arr


class ImageDataset(Dataset):
    """Labelled files -> ``(tensor, label: float, index)``; ``index`` is the position in ``.samples``.

    ``samples`` come from :func:`dfig.data.layout.discover`; ``transform`` from
    :func:`dfig.data.transforms.build_transform`. See the module docstring for ``policy``/``precheck``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Any], torch.Tensor] | None = None,
        reader: Reader = load_sample_image,
        policy: str = "skip",
        precheck: bool = True,
        report: RunReport | None = None,
        progress: bool | None = None,
    ) -> None:
        if policy not in BAD_FILE_POLICIES:
            raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
        self.transform = transform
        self.reader = reader
        self.policy = policy
        self.report = report if report is not None else RunReport("dataset")
        samples = list(samples)
        if precheck:
            samples = self._precheck(samples, progress)
        self.samples: list[Sample] = samples
        self.report.done = len(self.samples)

    def _precheck(self, samples: list[Sample], progress: bool | None) -> list[Sample]:
        good = []
        show = len(samples) >= 2000 if progress is None else progress
        for s in tqdm(samples, desc="checking files", unit="file", disable=not show):
            try:
                self.reader(s.path)
            except BadImageError as e:
                if self.policy == "strict":
                    raise
                self.report.fail(e.path, e.reason)
                continue
            good.append(s)
        return good

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every file left out (same as ``self.report.failed``)."""
        return list(self.report.failed)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        for k in range(n):
            i = (index + k) % n
            s = self.samples[i]
            try:
                return self.reader(s.path), i
            except BadImageError as e:
                if self.policy == "strict":
                    raise
                if str(e.path) not in {p for p, _ in self.report.failed}:
                    self.report.fail(e.path, e.reason)
                warnings.warn(f"bad file skipped during loading: {e}", stacklevel=3)
        raise BadImageError(self.samples[index].path, "no readable file left in this dataset")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, int]:
        img, i = self._load(int(index))
        s = self.samples[i]
        if self.transform is None:
            x = img if isinstance(img, torch.Tensor) else _to_tensor(img)
        else:
            try:
                x = self.transform(img)
            except Exception as e:
                if hasattr(e, "add_note"):  # Python 3.11+; on 3.10 the error goes up without the note
                    e.add_note(f"while transforming {s.path}")
                raise
        return x, float(s.label), i


def _to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    if isinstance(img, Image.Image):
        return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy/random (and a seeded transform) from torch's worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 - the legacy global RNG is what third-party code in workers uses
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    transform = getattr(getattr(info, "dataset", None), "transform", None)
    if transform is not None and hasattr(transform, "reseed"):
        transform.reseed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader whose order and worker seeds follow ``seed`` (same seed -> same batches).

    The shuffling order comes from a private generator seeded with ``seed``; each worker is seeded
    from it (:func:`seed_worker`). With ``workers=0`` the augmentation draws use torch's global RNG
    (or the transform's own seed): call ``torch.manual_seed`` first for repeatable augmentation.
    """
    g = torch.Generator()
    g.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=g,
        worker_init_fn=seed_worker if workers > 0 else None,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and workers > 0,
    )


def class_balance(samples: Sequence[Sample]) -> dict[str, float | int]:
    """Counts per class, the fake fraction and ``pos_weight`` (= n_real / n_fake, for BCEWithLogits)."""
    n_real = sum(1 for s in samples if s.label == 0)
    n_fake = sum(1 for s in samples if s.label == 1)
    n = n_real + n_fake
    return {
        CLASS_NAMES[0]: n_real,
        CLASS_NAMES[1]: n_fake,
        "n": n,
        "fake_fraction": n_fake / n if n else float("nan"),
        "pos_weight": n_real / n_fake if n_fake else float("nan"),
    }


__all__ = ["ImageDataset", "Reader", "class_balance", "load_sample_image", "make_loader", "seed_worker"]
