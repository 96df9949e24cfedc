"""CNNDetection-style training of a DFIG detector on an LNP tree (``python -m dfig.train``).

The recipe follows the original (CNNDetection -> DFIG): Adam(lr, betas=(beta1, 0.999)),
``BCEWithLogits`` on one logit, validation every epoch, early stopping with patience
``earlystop_epoch`` on a validation criterion; when patience runs out the learning rate drops by 10
and training continues; it stops when the learning rate falls below ``min_lr`` (1e-6), after ``niter``
epochs, or after the epoch that crosses the wall-clock budget ``max_minutes``.

Outputs (only rank 0 writes; every file is written atomically) in ``<checkpoints_dir>/<name>/``:

- ``model_epoch_best.pth``, ``model_epoch_latest.pth``: ``model`` (state dict), ``optimizer``,
  ``step``, ``epoch``, ``options`` (``asdict(TrainOptions)``), ``config`` (``model.config()``),
  ``features`` (the dataroot's ``dfig_stage.json``: the feature pipeline it was trained on),
  ``threshold`` (the val threshold of the best epoch), ``val_metrics``, ``plateau`` (early-stopping
  state), ``rng`` (torch/numpy/random states, for exact resume), ``lr``;
- ``log.csv`` and ``log.json``: one row per epoch (train loss, val loss, val acc/AP/AUC, lr, seconds);
- ``predictions_{val,test}.csv`` (path, label, p_fake, pred) of the best checkpoint, ``summary.json``.

Distributed: started under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) it wraps the model in
``DistributedDataParallel`` (gloo on CPU, nccl on CUDA) and shards the training set with a
``DistributedSampler``; validation runs on rank 0 and its decision is broadcast.

``classes`` is accepted for compatibility with the original flags (CNNDetection listed class
subfolders such as ``horse,car``); DFIG has a single class (faces), so ``""`` or ``"face"`` both mean
"the tree itself". Any other value names a subfolder ``dataroot/<split>/<class>/{real,fake}`` and only
one such class is supported.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import pickle
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dfig import io, paths
from dfig.data.cache import CACHE_MODES, DEFAULT_MAX_CACHE_MB

TRAIN_MODES: tuple[Any, ...] = (0, 1, 2, "lnp", "spec")
ARCHS: tuple[str, ...] = ("res50", "mobilev2", "res34")
EARLYSTOP_METRICS: tuple[str, ...] = ("acc", "auc", "ap", "loss")
LR_POLICIES: tuple[str, ...] = ("plateau", "cosine")
EVAL_CROPS: tuple[str, ...] = ("center", "full", "grid")
SAMPLE_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy")


# ---------------------------------------------------------------------------------------------
# options


#: the precise-BN pass draws its batches from a loader seeded ``seed + BN_RECAL_SEED_OFFSET``: a fixed
#: offset, so that it is repeatable and independent of the training epochs (seeded ``seed * 1000 + epoch``)
BN_RECAL_SEED_OFFSET = 7


@dataclass
class TrainOptions:
    """All training settings. Names follow the original CNNDetection/DFIG flags where they exist."""

    name: str = "dfig"  # run name: checkpoints go to <checkpoints_dir>/<name>/
    dataroot: str = ""  # LNP tree (or face tree for mode "lnp"): {train,val,test}/{real,fake}
    classes: str = ""  # compatibility flag: "" or "face" = the tree itself
    arch: str = "res50"  # res50 | mobilev2 | res34
    train_mode: int | str = 0  # 0 | 1 | 2 | "lnp" (backbone on the 3-channel input) | "spec"
    spectra_channels: int = 1  # 1 (grey spectra, the paper) or 3
    batch_size: int = 64
    lr: float = 1e-4
    beta1: float = 0.9
    weight_decay: float = 0.0  # ours (Adam weight decay; 0 = the original)
    loadSize: int = 256
    cropSize: int = 224
    no_resize: bool = False  # ours: keep the native resolution (resizing smears the noise)
    no_crop: bool = False
    no_flip: bool = False
    blur_prob: float = 0.0
    blur_sig: tuple[float, float] = (0.0, 3.0)
    jpg_prob: float = 0.0
    jpg_qual: tuple[int, int] = (30, 100)
    niter: int = 100  # maximum number of epochs
    earlystop_epoch: int = 5  # patience (epochs without improvement)
    earlystop_metric: str = "acc"  # acc (original) | auc | ap | loss
    earlystop_delta: float = 0.001  # minimum improvement that resets the patience
    min_lr: float = 1e-6  # stop when the lr falls below this
    lr_policy: str = "plateau"  # plateau (original: /10 when patience runs out) | cosine
    warmup_epochs: int = 0  # ours: linear warm-up (cosine policy)
    train_repeats: int = 1  # ours: passes over the training set per epoch (more random crops)
    eval_crop: str = "center"  # center (original) | full (loadSize image) | grid (multi-crop mean)
    eval_cropSize: int | None = None  # ours: centre-crop size for val/test (None = cropSize)
    eval_grid: int = 3  # grid: eval_grid x eval_grid crops averaged
    pretrained: str | None = None  # backbone weights: a path, a registry name, or None (random)
    stem_init: str = "random"  # random | rgb (copy the RGB stem filters to the LNP channels)
    spec_norm: str = "none"  # normalisation of the spectral channels (see dfig.core.models)
    normalize: str = "imagenet"  # imagenet (original) | none
    seed: int = 0
    num_threads: int = 0  # torch CPU threads (0 = leave as is)
    workers: int = 0
    device: str = "auto"  # auto -> cuda if available, else cpu
    profile: str = "smoke"  # for the default checkpoints_dir
    checkpoints_dir: str | None = None  # default: dfig.paths.checkpoints_dir(profile)
    max_minutes: float | None = None  # wall-clock budget: stop after the epoch that crosses it
    val_every: int = 1
    resume: bool = False  # continue from model_epoch_latest.pth
    amp: bool = False  # autocast: bf16 (CUDA with bf16, CPU), else fp16 + GradScaler
    channels_last: bool = False
    policy: str = "skip"  # bad files: skip (counted) | strict
    max_train: int | None = None  # ours, for quick runs: use at most this many training images
    center_region: int | None = None  # ours: keep the central NxN region of every image before the
    # transform (aligned faces: the face), train and eval alike
    bn_recalibrate: int = 16  # ours: before validating, re-estimate BatchNorm statistics on this
    # many training batches (0 = the original: running averages only)
    evaluate_test: bool = True  # evaluate the best checkpoint on test after training
    allow_incomplete: bool = False  # train on a tree whose stage record says complete: false (warned,
    # recorded in the checkpoint and summary); default: refuse
    progress: bool = True  # tqdm bars
    cache: str = "auto"  # ours: decode every image once into RAM (dfig.data.cache): auto = on CPU | on | off
    max_cache_mb: float = DEFAULT_MAX_CACHE_MB  # ours: above this estimated size the run streams from disk

    def __post_init__(self) -> None:
        self.train_mode = parse_mode(self.train_mode)
        self.blur_sig = tuple(float(x) for x in self.blur_sig)  # type: ignore[assignment]
        self.jpg_qual = tuple(int(x) for x in self.jpg_qual)  # type: ignore[assignment]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        checks = [
            (self.arch in ARCHS, f"arch must be one of {ARCHS}, got {self.arch!r}"),
            (
                self.train_mode in TRAIN_MODES,
                f"train_mode must be one of {TRAIN_MODES}, got {self.train_mode!r}",
            ),
            (
                self.spectra_channels in (1, 3),
                f"spectra_channels must be 1 or 3, got {self.spectra_channels}",
            ),
            (
                self.earlystop_metric in EARLYSTOP_METRICS,
                f"earlystop_metric must be one of {EARLYSTOP_METRICS}, got {self.earlystop_metric!r}",
            ),
            (
                self.lr_policy in LR_POLICIES,
                f"lr_policy must be one of {LR_POLICIES}, got {self.lr_policy!r}",
            ),
            (self.eval_crop in EVAL_CROPS, f"eval_crop must be one of {EVAL_CROPS}, got {self.eval_crop!r}"),
            (
                self.batch_size >= 1 and self.niter >= 1 and self.train_repeats >= 1,
                "batch_size, niter and train_repeats must be >= 1",
            ),
            (self.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}, got {self.cache!r}"),
            (bool(self.dataroot), "dataroot is required (an LNP tree {train,val,test}/{real,fake})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)

    @property
    def run_dir(self) -> Path:
        base = Path(self.checkpoints_dir) if self.checkpoints_dir else paths.checkpoints_dir(self.profile)
        return base / self.name


def parse_mode(mode: int | str) -> int | str:
    """``"0"`` -> 0; ``"lnp"`` stays a string; anything else is returned unchanged (validated later)."""
    if isinstance(mode, str) and mode.strip().lstrip("-").isdigit():
        return int(mode)
    return mode


# ---------------------------------------------------------------------------------------------
# early stopping / learning-rate plateau logic (pure; unit-tested with fake metric sequences)


@dataclass
class Plateau:
    """Early stopping as in CNNDetection: ``patience`` epochs without an improvement larger than
    ``delta`` -> lr / ``factor`` and a fresh patience; stop once the lr would fall below ``min_lr``.

    ``mode="max"`` for accuracy/AUC/AP, ``"min"`` for a loss. :meth:`step` returns one of
    ``"improved"``, ``"wait"``, ``"decay"`` (the caller divides the lr), ``"stop"``.
    """

    patience: int = 5
    delta: float = 0.001
    factor: float = 10.0
    min_lr: float = 1e-6
    mode: str = "max"
    best: float | None = None
    best_epoch: int = -1
    counter: int = 0
    decays: int = 0

    def _better(self, score: float) -> bool:
        if self.best is None:
            return True
        return score > self.best + self.delta if self.mode == "max" else score < self.best - self.delta

    def step(self, score: float, lr: float, epoch: int = -1) -> str:
        """Feed one validation score (and the current lr); return the action to take."""
        if self._better(score):
            self.best, self.best_epoch, self.counter = float(score), epoch, 0
            return "improved"
        self.counter += 1
        if self.counter < self.patience:
            return "wait"
        self.counter = 0
        if lr / self.factor < self.min_lr:
            return "stop"
        self.decays += 1
        return "decay"

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def score_of(metrics: dict[str, float], criterion: str) -> float:
    """The early-stopping score of a metrics dict (``acc``, ``auc`` -> roc_auc, ``ap``, ``loss``)."""
    key = {"acc": "acc", "auc": "roc_auc", "ap": "ap", "loss": "loss"}[criterion]
    v = metrics.get(key, float("nan"))
    return (
        float(v)
        if v is not None and not math.isnan(float(v))
        else (-math.inf if criterion != "loss" else math.inf)
    )


def cosine_lr(base_lr: float, epoch: int, total: int, warmup: int = 0, floor: float = 0.0) -> float:
    """Learning rate of (0-based) ``epoch`` for a cosine schedule with linear warm-up."""
    if warmup > 0 and epoch < warmup:
        return base_lr * (epoch + 1) / warmup
    t = (epoch - warmup) / max(1, total - warmup)
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


def get_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ---------------------------------------------------------------------------------------------
# seeds, devices, distributed


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - the global stream other code may draw from
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """python/numpy/torch(/cuda) RNG states as plain containers and tensors (``weights_only``-loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    st = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    v, state, gauss = st["python"]
    random.setstate((v, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; otherwise ``torch.device(device)``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by ``torchrun`` (env ``RANK``/``WORLD_SIZE``).

    gloo on CPU, nccl on CUDA. A single process (no env) returns a disabled :class:`DistInfo`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def broadcast_object(obj: Any, dist_info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (no-op without distribution)."""
    if not dist_info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------------------------------------
# data


def split_samples(dataroot: str | os.PathLike[str], classes: str = "") -> dict[str, list[Any]]:
    """Samples of the ``train`` and ``val`` (and, when present, ``test``) splits of ``dataroot``."""
    from dfig.data.layout import discover

    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--dataroot {root}: no such folder; give the LNP tree dfig.stages.lnp wrote, laid out "
            "as {train,val,test}/{real,fake}/*"
        )
    cls = [c for c in (classes or "").split(",") if c and c.lower() not in ("face", "faces")]
    if len(cls) > 1:
        raise ValueError(
            f"--classes {classes!r}: DFIG trains on one class; give '' or 'face' or one subfolder"
        )
    out = {}
    for split in ("train", "val", "test"):
        split_root = root / split / cls[0] if cls else root / split
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
    from dfig.data.layout import CLASS_DIRS, CLASS_NAMES, Sample, list_images

    base = root / split / cls
    found = [(base / d, lab) for d, lab in CLASS_DIRS.items() if (base / d).is_dir()]
    if {lab for _, lab in found} != {0, 1}:
        raise FileNotFoundError(f"{base}: expected class folders 'real' and 'fake' (or '0_real'/'1_fake')")
    return sorted(
        (Sample(p, lab, split, CLASS_NAMES[lab]) for d, lab in found for p in list_images(d, SAMPLE_EXTS)),
        key=lambda s: str(s.path),
    )


def check_input_complete(opts: TrainOptions) -> list[dict[str, Any]]:
    """Refuse a dataroot whose stage record says it is incomplete, unless ``opts.allow_incomplete``.

    Arguments: ``opts``. Returns: the incomplete records (stored in checkpoints and the summary).
    """
    from dfig.notebook import check_complete

    return check_complete(
        opts.dataroot,
        opts.allow_incomplete,
        fix="finish the extraction first (run the same dfig.stages.lnp/dfig.stages.segment command or notebook "
        "again: it resumes)",
    )


def report_skipped(datasets: dict[str, Any], print_it: bool = True) -> dict[str, dict[str, Any]]:
    """The bad files each dataset left out, per split (``RunReport.to_dict()``), printed when any.

    Arguments: ``datasets`` split -> ``ImageDataset``; ``print_it`` print the summaries.
    Returns: split -> ``{"stage", "done", "failed": [{"path", "reason"}], ...}``.
    """
    out = {}
    for split, ds in datasets.items():
        rep = ds.report
        out[split] = {**rep.to_dict(), "stage": f"dataset {split}"}
        if print_it and rep.failed:
            print(
                f"{split}: {len(rep.failed)} bad file(s) left out, {len(ds)} used (policy skip):"
                + rep.summary().split("\n", 1)[-1].replace("FAILED", "SKIPPED"),
                flush=True,
            )
    return out


def check_both_classes(ds: Any, split_dir: Path, report: dict[str, Any]) -> None:
    """Refuse a split without usable images of both classes before any training, naming the folder.

    Arguments: ``ds`` the split's dataset (after the bad-file check); ``split_dir`` its folder;
    ``report`` its skip report. Raises ``ValueError`` naming the class folder and the bad files.
    """
    from dfig.data.layout import CLASS_DIRS, CLASS_NAMES

    have = {s.label for s in ds.samples}
    for label in (0, 1):
        if label in have:
            continue
        dirs = [split_dir / d for d, lab in CLASS_DIRS.items() if lab == label and (split_dir / d).is_dir()]
        folder = dirs[0] if dirs else split_dir / CLASS_NAMES[label]
        bad = [f for f in report["failed"] if Path(f["path"]).parent == folder]
        why = f"{len(bad)} bad file(s) there were left out" if bad else "it holds no images"
        raise ValueError(
            f"{folder}: no usable {CLASS_NAMES[label]} images for the {split_dir.name} split ({why}); "
            f"training and validation need both real and fake images: add {CLASS_NAMES[label]} "
            "images there or fix the bad files"
        )


def augment_options(opts: TrainOptions, for_eval: bool = False) -> Any:
    """``dfig.data.transforms.AugmentOptions`` from the training options (eval crop applied)."""
    from dfig.data.transforms import AugmentOptions

    crop = opts.cropSize
    no_crop = opts.no_crop
    if for_eval and opts.eval_crop in ("full", "grid"):
        # a square image: loadSize, or the centre region kept at native resolution; grid crops on the tensor
        crop = opts.center_region if (opts.no_resize and opts.center_region) else opts.loadSize
        no_crop = False
    elif for_eval and opts.eval_cropSize:
        crop = opts.eval_cropSize
    return AugmentOptions(
        load_size=opts.loadSize,
        crop_size=crop,
        no_resize=opts.no_resize,
        no_crop=no_crop,
        no_flip=opts.no_flip,
        blur_prob=opts.blur_prob,
        blur_sig=tuple(opts.blur_sig),
        jpg_prob=opts.jpg_prob,
        jpg_qual=tuple(opts.jpg_qual),
    )


def build_dataset(samples: Sequence[Any], opts: TrainOptions, train: bool, cache: bool = False) -> Any:
    """An ``ImageDataset`` (or, with ``cache``, a ``dfig.data.cache.CachedDataset``) over ``samples``."""
    from dfig.data.cache import CachedDataset
    from dfig.data.dataset import ImageDataset, load_sample_image
    from dfig.data.transforms import build_transform

    tf = build_transform(augment_options(opts, for_eval=not train), train=train, normalize=opts.normalize)
    kind = CachedDataset if cache else ImageDataset
    return kind(
        list(samples), tf, reader=region_reader(load_sample_image, opts.center_region), policy=opts.policy
    )


def cache_decision(opts: TrainOptions, device: torch.device, train_samples: list, val_samples: list) -> Any:
    """``dfig.data.cache.decide_cache`` for a run: cache or stream, the size estimate, the reason."""
    from dfig.data import cache as dc
    from dfig.data.dataset import load_sample_image

    augment, eval_aug = augment_options(opts), augment_options(opts, for_eval=True)
    reader = region_reader(load_sample_image, opts.center_region)
    n_val = len(val_samples)
    size = lambda: dc.estimate_mb([*train_samples, *val_samples], reader, augment, eval_aug, n_val)  # noqa: E731
    return dc.decide_cache(opts.cache, device, size, dc.cache_blocker(augment, True), opts.max_cache_mb)


class CenterRegion:
    """Reader wrapper: keep the central ``size x size`` region of what ``reader`` returns (PIL or HxWxC
    array); images smaller than ``size`` pass unchanged. Picklable (DataLoader workers)."""

    def __init__(self, reader: Any, size: int) -> None:
        self.reader, self.size = reader, int(size)

    def __call__(self, path: Any) -> Any:
        return center_region(self.reader(path), self.size)


def center_region(img: Any, size: int | None) -> Any:
    """The central ``size x size`` region of a PIL image or HxWxC array (unchanged if smaller or None)."""
    if not size:
        return img
    w, h = (
        img.size if hasattr(img, "size") and not isinstance(img, np.ndarray) else (img.shape[1], img.shape[0])
    )
    if w < size or h < size:
        return img
    left, top = (w - size) // 2, (h - size) // 2
    if isinstance(img, np.ndarray):
        return img[top : top + size, left : left + size]
    return img.crop((left, top, left + size, top + size))


def region_reader(reader: Any, size: int | None) -> Any:
    """``reader`` itself, or wrapped in :class:`CenterRegion` when ``size`` is set."""
    return CenterRegion(reader, size) if size else reader


def _loader(
    dataset: Any,
    opts: TrainOptions,
    shuffle: bool,
    seed: int,
    dist_info: DistInfo | None = None,
    epoch: int = 0,
    pin: bool = False,
    persistent: bool = False,
) -> torch.utils.data.DataLoader:
    from dfig.data.dataset import make_loader

    if dist_info is None or not dist_info.enabled or not shuffle:
        return make_loader(
            dataset,
            batch_size=opts.batch_size,
            shuffle=shuffle,
            workers=opts.workers,
            seed=seed,
            pin_memory=pin,
            persistent_workers=persistent,
        )
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(
        dataset, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=opts.seed
    )
    sampler.set_epoch(epoch)
    g = torch.Generator()
    g.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=opts.batch_size,
        sampler=sampler,
        num_workers=opts.workers,
        generator=g,
        pin_memory=pin,
    )


# ---------------------------------------------------------------------------------------------
# evaluation


def _grid_crops(x: torch.Tensor, size: int, k: int) -> list[torch.Tensor]:
    h, w = x.shape[-2:]
    if size >= min(h, w) or k <= 1:
        return [x]
    ys = np.linspace(0, h - size, k).round().astype(int)
    xs = np.linspace(0, w - size, k).round().astype(int)
    return [x[..., y : y + size, xx : xx + size] for y in ys for xx in xs]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: str | torch.device = "cpu",
    crop: int | None = None,
    grid: int = 1,
    channels_last: bool = False,
    progress: bool = False,
    return_loss: bool = False,
    return_index: bool = False,
) -> Any:
    """Run ``model`` over ``loader``; return ``(y, p_fake)`` numpy arrays in loader order.

    With ``crop`` and ``grid > 1`` each image is scored as the mean probability of a
    ``grid x grid`` lattice of ``crop``-sized crops (test-time multi-crop). ``return_loss=True``
    appends the mean BCE loss, ``return_index=True`` the dataset indices (third item of each batch,
    as :class:`~dfig.data.dataset.ImageDataset` yields). The model's train/eval mode is restored.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    was_training = model.training
    model.eval()
    ys, ps, idx, losses, n = [], [], [], 0.0, 0
    crit = nn.BCEWithLogitsLoss(reduction="sum")
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        x, y = batch[0], batch[1]
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y_t = y.to(device).float()
        crops = _grid_crops(x, crop, grid) if crop else [x]
        logits = [model(c).float().reshape(-1) for c in crops]
        prob = torch.stack([torch.sigmoid(lg) for lg in logits]).mean(0)
        if return_loss:
            losses += float(sum(crit(lg, y_t) for lg in logits) / len(logits))
            n += len(y_t)
        ys.append(y.numpy().astype(int))
        ps.append(prob.cpu().numpy())
        idx.append(
            batch[2].numpy().astype(int) if len(batch) > 2 else np.arange(len(y)) + sum(map(len, ys[:-1]))
        )
    model.train(was_training)
    y_all = np.concatenate(ys) if ys else np.zeros(0, int)
    p_all = np.concatenate(ps) if ps else np.zeros(0, np.float32)
    out: tuple[Any, ...] = (y_all, p_all)
    if return_loss:
        out += (losses / max(n, 1),)
    if return_index:
        out += (np.concatenate(idx) if idx else np.zeros(0, int),)
    return out


def predictions_frame(samples: Sequence[Any], y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> Any:
    """Per-image predictions: path, label, p_fake, pred (``p_fake > threshold``, as dfig.core.metrics)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "path": [str(s.path) for s in samples],
            "label": y.astype(int),
            "p_fake": p.astype(float),
            "pred": (p > threshold).astype(int),
        }
    )


# ---------------------------------------------------------------------------------------------
# checkpoints and logs


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` through :func:`dfig.io.atomic_path` (never a truncated checkpoint)."""
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


class CheckpointFileError(ValueError):
    """A ``.pth`` file that is not a readable checkpoint (empty, truncated, corrupt, something else)."""


def check_checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """Cheap structural check of a ``torch.save`` file before loading it (reads the zip directory only).

    Arguments: ``path`` the file. Returns: the path. Raises ``FileNotFoundError`` or
    :class:`CheckpointFileError` ("not a checkpoint" / "truncated") naming the file and the fix.
    """
    import zipfile

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found (check the path)")
    with open(p, "rb") as f:
        head = f.read(4)
    fix = (
        "use the model_epoch_best.pth / model_epoch_latest.pth a dfig.stages.train run wrote, or train again"
    )
    if not head:
        raise CheckpointFileError(f"{p}: not a checkpoint: the file is empty (0 bytes); {fix}")
    if head.startswith(b"PK") and not zipfile.is_zipfile(p):
        raise CheckpointFileError(
            f"{p}: not a checkpoint: the file is truncated or corrupt (its zip directory "
            f"is missing, {p.stat().st_size} bytes); copy it again or {fix}"
        )
    if not head.startswith((b"PK", b"\x80")):  # torch.save: zip; legacy format: a pickle
        raise CheckpointFileError(f"{p}: not a checkpoint (not a file torch.save wrote); {fix}")
    return p


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with every read failure turned into :class:`CheckpointFileError`.

    Arguments: ``path``, ``map_location``. Returns: what the file holds. Never suggests loading the
    file with arbitrary Python objects allowed.
    """
    p = check_checkpoint_file(path)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # objects beyond tensors and plain containers, or garbage
        raise CheckpointFileError(
            f"{p}: not a checkpoint of tensors and plain containers (corrupt, or some "
            "other pickle); use a file dfig.stages.train wrote"
        ) from e
    except (RuntimeError, EOFError, ValueError, AttributeError, ImportError, KeyError) as e:
        raise CheckpointFileError(
            f"{p}: not a checkpoint, or truncated/corrupt ({' '.join(str(e).split())[:120]}); "
            "use a file dfig.stages.train wrote, or train again"
        ) from e


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint dict (tensors and plain containers only: ``weights_only=True``).

    Arguments: ``path``, ``map_location``. Returns: the checkpoint dict. Raises
    :class:`CheckpointFileError` for a corrupt file or one that is not a ``dfig.stages.train`` checkpoint.
    """
    ck = read_checkpoint(path, map_location)
    if not isinstance(ck, dict) or not {"model", "epoch"} <= set(ck):
        raise CheckpointFileError(
            f"{path}: not a dfig.stages.train checkpoint (no 'model'/'epoch' entries); "
            "use a model_epoch_*.pth that dfig.stages.train wrote"
        )
    return ck


LOG_FIELDS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "val_acc",
    "val_ap",
    "val_auc",
    "val_real_acc",
    "val_fake_acc",
    "seconds",
    "minutes_total",
    "action",
)


def write_log(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """``log.csv`` and ``log.json`` (the whole history, rewritten atomically each epoch)."""
    import io as _io

    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(LOG_FIELDS), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in LOG_FIELDS})
    io.atomic_write_text(run_dir / "log.csv", buf.getvalue())
    io.save_json(rows, run_dir / "log.json")


def _jsonable_options(opts: TrainOptions) -> dict[str, Any]:
    d = asdict(opts)
    d["blur_sig"], d["jpg_qual"] = list(d["blur_sig"]), list(d["jpg_qual"])
    return d


# ---------------------------------------------------------------------------------------------
# training


def build_model(opts: TrainOptions) -> nn.Module:
    """The detector of ``opts`` (``dfig.core.models.build_detector``)."""
    from dfig.core.models import build_detector

    return build_detector(
        opts.arch,
        opts.train_mode,
        spectra_channels=opts.spectra_channels,
        pretrained=opts.pretrained,
        stem_init=opts.stem_init,
        spec_norm=opts.spec_norm,
    )


def amp_precision(device: str | torch.device, amp: bool) -> str:
    """The training precision for ``amp`` on ``device``: ``fp32`` without amp; with amp bf16 where
    supported (CUDA with bf16, CPU), else fp16 (older GPUs; then a GradScaler is used)."""
    from dfig.accel import reduced_precision

    return reduced_precision(device) if amp else "fp32"


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    from dfig.accel import autocast

    return autocast(device, amp_precision(device, amp))


def make_scaler(device: str | torch.device, amp: bool) -> Any:
    """``torch.amp.GradScaler`` when training runs in fp16 (amp on a GPU without bf16), else ``None``."""
    if amp_precision(device, amp) != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    device: str | torch.device,
    max_batches: int = 16,
    channels_last: bool = False,
) -> int:
    """Re-estimate every BatchNorm's running mean/var on up to ``max_batches`` training batches.

    Trained from scratch on a few hundred images, BatchNorm's exponential running averages lag far
    behind the weights (MobileNetV2 then gives one constant score in eval mode). A cumulative
    average over fresh batches with the final weights ("precise BN") fixes eval mode without
    touching the weights. Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    was_training = model.training
    saved = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative moving average
    model.train()
    n = 0
    for batch in loader:
        x = batch[0].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model(x)
        n += 1
        if n >= max_batches:
            break
    for b, mom in zip(bns, saved):
        b.momentum = mom
    model.train(was_training)
    return n


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scaler: Any = None,
    amp: bool = False,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "train",
) -> tuple[float, int]:
    """One pass over ``loader``; returns (mean training loss, number of optimiser steps)."""
    from tqdm.auto import tqdm

    model.train()
    total, n, steps = torch.zeros((), device=device), 0, 0  # summed on the device: no sync per step
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for batch in bar:
        loss = train_step(model, batch, optimizer, device, scaler, amp, channels_last)
        total += loss * len(batch[1])
        n += len(batch[1])
        steps += 1
        if progress and steps % 10 == 1:
            bar.set_postfix(loss=f"{float(total) / n:.4f}")
    return float(total) / max(n, 1), steps


def train_step(
    model: nn.Module,
    batch: Sequence[Any],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    scaler: Any = None,
    amp: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """One optimiser step on ``batch`` = ``(x, y, ...)``; returns the detached loss (on the device).

    ``amp``: autocast in :func:`amp_precision`'s dtype (the spectra stay float32: ``dfig.core.spectra``
    runs the FFT with autocast off); ``scaler`` from :func:`make_scaler` (fp16 only). Inputs are
    copied with ``non_blocking`` (fast from the loader's pinned memory).
    """
    x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, amp):
        logits = model(x).reshape(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


def _val_metrics(y: np.ndarray, p: np.ndarray, loss: float) -> dict[str, float]:
    from dfig.core.metrics import compute_metrics

    m = {k: float(v) for k, v in compute_metrics(y, p).items() if isinstance(v, int | float | np.floating)}
    m["loss"] = float(loss)
    return m


def eval_kwargs(opts: TrainOptions) -> dict[str, Any]:
    """Keyword arguments of :func:`evaluate` for ``opts``' evaluation crop (``grid``: crop size and grid).

    Arguments: ``opts`` the run's options. Returns: ``{}`` for a centre crop, else ``crop`` and ``grid``.
    """
    if opts.eval_crop == "grid":
        return {"crop": opts.cropSize, "grid": opts.eval_grid}
    return {}


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train a detector with ``opts``; return final/best val metrics, epochs, ``stopped_by``, time, paths.

    ``stopped_by`` is one of ``"niter"``, ``"early_stop"`` (lr fell below ``min_lr``),
    ``"max_minutes"`` (wall-clock budget).
    """
    opts.validate()
    t_start = time.time()
    if opts.num_threads > 0:
        torch.set_num_threads(opts.num_threads)
    device = resolve_device(opts.device)
    dist_info = init_distributed(device)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    seed_everything(opts.seed + dist_info.rank)

    run_dir = opts.run_dir
    incomplete = check_input_complete(opts)
    samples = split_samples(opts.dataroot, opts.classes)
    if dist_info.is_main:
        from dfig.clierrors import check_writable

        check_writable(run_dir, "--checkpoints_dir")
    train_samples = samples["train"]
    if opts.max_train and len(train_samples) > opts.max_train:
        rng = np.random.default_rng(opts.seed)
        keep = np.sort(rng.choice(len(train_samples), opts.max_train, replace=False))
        train_samples = [train_samples[i] for i in keep]
    cache = cache_decision(opts, device, train_samples, samples["val"])
    if dist_info.is_main:
        print(cache.reason, flush=True)
    train_ds = build_dataset(train_samples, opts, train=True, cache=cache.use)
    val_ds = build_dataset(samples["val"], opts, train=False, cache=cache.use)
    data_report = report_skipped({"train": train_ds, "val": val_ds}, print_it=dist_info.is_main)
    for split, ds in (("train", train_ds), ("val", val_ds)):
        check_both_classes(ds, Path(opts.dataroot) / split, data_report[split])
    if opts.train_repeats > 1:  # more random crops per epoch: the same (prechecked) dataset k times
        train_ds = torch.utils.data.ConcatDataset([train_ds] * opts.train_repeats)
    features = io.read_stage_meta(opts.dataroot)

    model = build_model(opts).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    config = model.config() if hasattr(model, "config") else {}
    optimizer = torch.optim.Adam(
        model.parameters(), lr=opts.lr, betas=(opts.beta1, 0.999), weight_decay=opts.weight_decay
    )
    scaler = make_scaler(device, opts.amp)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotuned conv algorithms pay off
    plateau = Plateau(
        patience=opts.earlystop_epoch,
        delta=opts.earlystop_delta,
        min_lr=opts.min_lr,
        mode="min" if opts.earlystop_metric == "loss" else "max",
    )
    start_epoch, step, log_rows = 0, 0, []
    best_threshold, best_val = 0.5, {}
    elapsed_before = 0.0

    latest_p, best_p = run_dir / "model_epoch_latest.pth", run_dir / "model_epoch_best.pth"
    if opts.resume:
        if not latest_p.is_file():
            raise FileNotFoundError(f"--resume: {latest_p} not found; train without --resume first")
        ck = load_checkpoint(latest_p, map_location=device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        step, start_epoch = int(ck["step"]), int(ck["epoch"])
        plateau.load_state_dict(ck["plateau"])
        best_threshold, best_val = float(ck.get("best_threshold", 0.5)), dict(ck.get("best_val_metrics", {}))
        elapsed_before = float(ck.get("elapsed_minutes", 0.0))
        log_rows = list(ck.get("log", []))
        if "rng" in ck and not dist_info.enabled:
            set_rng_state(ck["rng"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])

    net: nn.Module = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def payload(epoch: int, val_metrics: dict[str, float], threshold: float) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch,
            "options": _jsonable_options(opts),
            "config": config,
            "features": features,
            "threshold": threshold,
            "val_metrics": val_metrics,
            "best_threshold": best_threshold,
            "best_val_metrics": best_val,
            "plateau": plateau.state_dict(),
            "rng": rng_state(),
            "lr": get_lr(optimizer),
            "log": log_rows,
            "elapsed_minutes": elapsed_before + (time.time() - t_start) / 60,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "world_size": dist_info.world_size,
            "torch": str(torch.__version__),
            "data_report": data_report,
            "incomplete_input": incomplete,
        }

    stopped_by = "niter"
    epoch = start_epoch
    main = dist_info.is_main
    pin = device.type == "cuda"
    val_loader = _loader(val_ds, opts, shuffle=False, seed=opts.seed, pin=pin, persistent=opts.workers > 0)
    for epoch in range(start_epoch, opts.niter):
        t_ep = time.time()
        if opts.lr_policy == "cosine":
            set_lr(optimizer, cosine_lr(opts.lr, epoch, opts.niter, opts.warmup_epochs, floor=opts.min_lr))
        lr_used = get_lr(optimizer)
        loader = _loader(
            train_ds,
            opts,
            shuffle=True,
            seed=opts.seed * 1000 + epoch,
            dist_info=dist_info,
            epoch=epoch,
            pin=pin,
        )  # new per epoch: per-epoch seeds keep resume exact
        train_loss, n_steps = train_one_epoch(
            net,
            loader,
            optimizer,
            device,
            scaler,
            opts.amp,
            opts.channels_last,
            progress=opts.progress and main,
            desc=f"epoch {epoch + 1}/{opts.niter}",
        )
        step += n_steps
        done_epochs = epoch + 1
        decision: dict[str, Any] = {"action": "", "stop": None}
        if main:
            row: dict[str, Any] = {
                "epoch": done_epochs,
                "step": step,
                "lr": lr_used,
                "train_loss": train_loss,
            }
            validate_now = done_epochs % opts.val_every == 0 or done_epochs == opts.niter
            if validate_now:
                if opts.bn_recalibrate:
                    recalibrate_bn(
                        model,
                        _loader(train_ds, opts, shuffle=True, seed=opts.seed + BN_RECAL_SEED_OFFSET),
                        device,
                        opts.bn_recalibrate,
                        opts.channels_last,
                    )
                y, p, vloss = evaluate(
                    model,
                    val_loader,
                    device,
                    channels_last=opts.channels_last,
                    return_loss=True,
                    **eval_kwargs(opts),
                )
                vm = _val_metrics(y, p, vloss)
                row.update(
                    val_loss=vloss,
                    val_acc=vm.get("acc"),
                    val_ap=vm.get("ap"),
                    val_auc=vm.get("roc_auc"),
                    val_real_acc=vm.get("real_acc"),
                    val_fake_acc=vm.get("fake_acc"),
                )
                action = plateau.step(score_of(vm, opts.earlystop_metric), get_lr(optimizer), done_epochs)
                if action == "improved":
                    from dfig.core.metrics import choose_threshold

                    best_threshold, best_val = float(choose_threshold(y, p)), vm
                    save_checkpoint(best_p, payload(done_epochs, vm, best_threshold))
                elif action == "decay" and opts.lr_policy == "plateau":
                    set_lr(optimizer, get_lr(optimizer) / plateau.factor)
                elif action == "stop" and opts.lr_policy == "plateau":
                    decision["stop"] = "early_stop"
                decision["action"] = action
                decision["lr"] = get_lr(optimizer)
            total_min = elapsed_before + (time.time() - t_start) / 60
            if (
                decision["stop"] is None
                and opts.max_minutes is not None
                and total_min >= opts.max_minutes
                and done_epochs < opts.niter
            ):
                decision["stop"] = "max_minutes"
            row.update(
                seconds=round(time.time() - t_ep, 2),
                minutes_total=round(total_min, 3),
                action=decision["action"],
            )
            log_rows.append(row)
            save_checkpoint(latest_p, payload(done_epochs, row, best_threshold))
            write_log(run_dir, log_rows)
            if opts.progress:
                print(_fmt_row(row), flush=True)
        decision = broadcast_object(decision, dist_info)
        if "lr" in decision:
            set_lr(optimizer, decision["lr"])
        if decision["stop"]:
            stopped_by = decision["stop"]
            break
    epochs_done = epoch + 1 if opts.niter > start_epoch else start_epoch
    if not best_p.is_file() and main:  # no validation ran (e.g. resume past niter): keep latest as best
        save_checkpoint(best_p, payload(epochs_done, {}, best_threshold))

    result: dict[str, Any] = {
        "name": opts.name,
        "epochs": epochs_done,
        "start_epoch": start_epoch,
        "stopped_by": stopped_by,
        "steps": step,
        "best_epoch": plateau.best_epoch,
        "best_val_metrics": best_val,
        "threshold": best_threshold,
        "final_val_metrics": {k: log_rows[-1].get(k) for k in LOG_FIELDS} if log_rows else {},
        "minutes": elapsed_before + (time.time() - t_start) / 60,
        "train_minutes": elapsed_before + (time.time() - t_start) / 60,
        "paths": {
            "run_dir": str(run_dir),
            "best": str(best_p),
            "latest": str(latest_p),
            "log_csv": str(run_dir / "log.csv"),
        },
        "features": features,
        "options": _jsonable_options(opts),
        "world_size": dist_info.world_size,
        "device": str(device),
        "data_report": data_report,
        "incomplete_input": incomplete,
        "precision": amp_precision(device, opts.amp),
    }
    if main and opts.evaluate_test:
        result.update(evaluate_best(opts, run_dir, samples, device))
        if "test" in result.get("eval_data_report", {}):
            data_report["test"] = result.pop("eval_data_report")["test"]
        result["minutes"] = elapsed_before + (time.time() - t_start) / 60
    result["skipped_files"] = sum(len(r["failed"]) for r in data_report.values())
    if main:
        io.save_json(result, run_dir / "summary.json")
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()
    return result


def evaluate_best(
    opts: TrainOptions, run_dir: Path, samples: dict[str, list[Any]], device: torch.device
) -> dict[str, Any]:
    """Evaluate ``model_epoch_best.pth`` on val and test; write ``predictions_{split}.csv``."""
    from dfig.core.metrics import compute_metrics

    ck = load_checkpoint(run_dir / "model_epoch_best.pth", map_location=device)
    model = build_model(opts).to(device)
    model.load_state_dict(ck["model"])
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    thr = float(ck.get("threshold", 0.5))
    out: dict[str, Any] = {
        "best_checkpoint_epoch": int(ck["epoch"]),
        "predictions": {},
        "eval_data_report": {},
    }
    for split in ("val", "test"):
        if split not in samples:
            continue
        ds = build_dataset(samples[split], opts, train=False)
        y, p = evaluate(
            model,
            _loader(ds, opts, shuffle=False, seed=opts.seed),
            device,
            channels_last=opts.channels_last,
            **eval_kwargs(opts),
        )
        kept = [ds.samples[i] for i in range(len(ds))] if hasattr(ds, "samples") else samples[split]
        out["eval_data_report"][split] = report_skipped({split: ds}, print_it=split == "test")[split]
        df = predictions_frame(kept, y, p, 0.5)
        dest = run_dir / f"predictions_{split}.csv"
        io.atomic_write_text(dest, df.to_csv(index=False))
        out["predictions"][split] = str(dest)
        out[f"{split}_metrics"] = _plain(compute_metrics(y, p, 0.5))
        out[f"{split}_metrics_at_val_threshold"] = _plain(compute_metrics(y, p, thr))
    return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, np.floating | float) else v) for k, v in d.items()}


def _fmt_row(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"lr {row['lr']:.2e}", f"loss {row['train_loss']:.4f}"]
    for k in ("val_loss", "val_acc", "val_auc"):
        if row.get(k) is not None:
            parts.append(f"{k} {row[k]:.4f}")
    parts.append(f"{row['seconds']:.0f}s")
    if row.get("action"):
        parts.append(row["action"])
    return " | ".join(parts)


# ---------------------------------------------------------------------------------------------
# CLI


def _csv_floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in str(text).replace(",", " ").split())


def build_parser() -> argparse.ArgumentParser:
    """argparse parser with one flag per :class:`TrainOptions` field (original names kept)."""
    ap = argparse.ArgumentParser(prog="python -m dfig.train", description=__doc__.split("\n")[0])
    defaults = TrainOptions()
    for f in dataclasses.fields(TrainOptions):
        d = getattr(defaults, f.name)
        flag = f"--{f.name}"
        if isinstance(d, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=d)
        elif f.name in ("blur_sig", "jpg_qual"):
            ap.add_argument(flag, type=_csv_floats, default=d, help="two values, 'a,b' or 'a b'")
        elif f.name == "train_mode":
            ap.add_argument(flag, type=parse_mode, default=d, help="0 | 1 | 2 | lnp | spec")
        elif f.name in ("pretrained", "checkpoints_dir"):
            ap.add_argument(flag, type=lambda s: None if s.lower() in ("", "none") else s, default=d)
        elif f.name == "max_minutes":
            ap.add_argument(flag, type=float, default=d)
        elif f.name in ("max_train", "eval_cropSize", "center_region"):
            ap.add_argument(flag, type=int, default=d)
        else:
            ap.add_argument(flag, type=type(d), default=d)
    return ap


def options_from_args(argv: Sequence[str] | None = None) -> TrainOptions:
    ns = vars(build_parser().parse_args(argv))
    for k in ("blur_sig", "jpg_qual"):
        v = tuple(ns[k])
        if len(v) == 1:
            v = (v[0], v[0])
        ns[k] = v
    return TrainOptions(**ns)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.train --name N --dataroot LNPROOT --classes face --arch mobilev2 --train_mode 0``.

    User errors (missing data, unwritable ``--checkpoints_dir``, a corrupt checkpoint, bad options, an
    incomplete stage) print one line and return 2.
    """
    from dfig.clierrors import USER_ERRORS, fail

    try:
        opts = options_from_args(argv)
        res = train(opts)
    except USER_ERRORS as e:
        return fail(e)
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("name", "epochs", "stopped_by", "best_epoch", "threshold", "minutes")
        print(json.dumps({k: res.get(k) for k in keys}, indent=2, default=str))
        for split in ("val", "test"):
            m = res.get(f"{split}_metrics")
            if m:
                print(
                    f"{split}: "
                    + ", ".join(f"{k} {m[k]:.4f}" for k in ("acc", "ap", "roc_auc", "eer") if k in m)
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
