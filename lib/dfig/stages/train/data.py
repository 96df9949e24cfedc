"""The data of a training run: the splits of the tree, their datasets and loaders, bad-file reports.

:func:`build_loaders` is the one place that turns options into datasets (swap it for a cached
version without touching the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig import io
from dfig.data.splits import split_samples
from dfig.data.transforms import center_region
from dfig.stages.train.distributed import DistInfo
from dfig.stages.train.options import TrainOptions

__all__ = [
    "CenterRegion",
    "TrainData",
    "augment_options",
    "build_dataset",
    "build_loaders",
    "cache_decision",
    "center_region",
    "check_both_classes",
    "check_input_complete",
    "data_loader",
    "region_reader",
    "report_skipped",
    "split_samples",
]


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
    """``dfig.data.transforms.AugmentOptions`` from the training options (eval crop applied).

    Arguments: ``opts``; ``for_eval`` the val/test transform. Returns: the ``AugmentOptions``
    (``load_size=0`` -> ``no_resize``).
    """
    from dfig.data.transforms import AugmentOptions

    no_resize = opts.load_size == 0
    load = opts.load_size or AugmentOptions.load_size  # not used for resizing when no_resize
    crop, no_crop = opts.crop_size, opts.no_crop
    if for_eval and opts.eval_crop in ("full", "grid"):
        # a square image: load_size, or the center region kept at native resolution; grid crops on the tensor
        crop = opts.center_region if (no_resize and opts.center_region) else load
        no_crop = False
    elif for_eval and opts.eval_crop_size:
        crop = opts.eval_crop_size
    return AugmentOptions(
        load_size=load,
        crop_size=crop,
        no_resize=no_resize,
        no_crop=no_crop,
        no_flip=opts.no_flip,
        blur_prob=opts.blur_prob,
        blur_sig=tuple(opts.blur_sig),
        jpg_prob=opts.jpg_prob,
        jpg_qual=tuple(opts.jpg_qual),
    )


def build_dataset(samples: Sequence[Any], opts: TrainOptions, train: bool, cache: bool = False) -> Any:
    """An ``ImageDataset`` (or, with ``cache``, a :class:`dfig.data.cache.CachedDataset`) over ``samples``.

    Arguments: ``samples``; ``opts`` (transform, centre region, bad-file policy); ``train`` (random or
    eval transform); ``cache`` (decode every file once into RAM). Returns: the dataset.
    """
    from dfig.data.cache import CachedDataset
    from dfig.data.dataset import ImageDataset, load_sample_image
    from dfig.data.transforms import build_transform

    tf = build_transform(augment_options(opts, for_eval=not train), train=train, normalize=opts.normalize)
    kind = CachedDataset if cache else ImageDataset
    return kind(
        list(samples), tf, reader=region_reader(load_sample_image, opts.center_region), policy=opts.policy
    )


def cache_decision(opts: TrainOptions, device: torch.device, train_samples: list, val_samples: list) -> Any:
    """:func:`dfig.data.cache.decide_cache` for a run: cache or stream, the size estimate, the reason."""
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


def region_reader(reader: Any, size: int | None) -> Any:
    """``reader`` itself, or wrapped in :class:`CenterRegion` when ``size`` is set."""
    return CenterRegion(reader, size) if size else reader


def data_loader(
    dataset: Any,
    opts: TrainOptions,
    shuffle: bool,
    seed: int,
    dist_info: DistInfo | None = None,
    epoch: int = 0,
    pin: bool = False,
    persistent: bool = False,
) -> torch.utils.data.DataLoader:
    """A loader over ``dataset`` with ``opts``' batch size and workers, seeded ``seed``.

    Arguments: ``shuffle``; ``seed`` of the shuffling generator; ``dist_info`` (shuffled + distributed:
    a ``DistributedSampler`` seeded ``opts.seed``, at ``epoch``); ``pin`` pinned memory; ``persistent``
    persistent workers. Returns: the ``DataLoader``.
    """
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


@dataclass
class TrainData:
    """The datasets of a run: ``samples`` per split, ``train``/``val`` datasets (train repeated
    ``train_repeats`` times), ``report`` (bad files per split), ``incomplete`` stage records,
    ``features`` (the tree's stage record)."""

    samples: dict[str, list[Any]]
    train: Any
    val: Any
    report: dict[str, dict[str, Any]]
    incomplete: list[dict[str, Any]]
    features: dict[str, Any] | None


def build_loaders(opts: TrainOptions, dist_info: DistInfo, device: torch.device | None = None) -> TrainData:
    """Check the input tree, list its splits and build the train/val datasets of ``opts``.

    Arguments: ``opts``; ``dist_info`` (only rank 0 prints the bad-file summary and the cache
    decision); ``device`` (``cache: auto`` caches on CPU). Returns:
    :class:`TrainData` (loaders are made per epoch from it by :func:`data_loader`). Raises
    ``FileNotFoundError``/``ValueError`` naming the folder for a missing, incomplete or one-class split.
    """
    from dfig.data.layout import split_dir

    incomplete = check_input_complete(opts)
    samples = split_samples(opts.dataroot, opts.classes)
    train_samples = samples["train"]
    if opts.max_train and len(train_samples) > opts.max_train:
        rng = np.random.default_rng(opts.seed)
        keep = np.sort(rng.choice(len(train_samples), opts.max_train, replace=False))
        train_samples = [train_samples[i] for i in keep]
    cache = cache_decision(opts, device or torch.device("cpu"), train_samples, samples["val"])
    if dist_info.is_main:
        print(cache.reason, flush=True)
    train_ds = build_dataset(train_samples, opts, train=True, cache=cache.use)
    val_ds = build_dataset(samples["val"], opts, train=False, cache=cache.use)
    report = report_skipped({"train": train_ds, "val": val_ds}, print_it=dist_info.is_main)
    for split, ds in (("train", train_ds), ("val", val_ds)):
        check_both_classes(ds, split_dir(opts.dataroot, split), report[split])
    if opts.train_repeats > 1:  # more random crops per epoch: the same (prechecked) dataset k times
        train_ds = torch.utils.data.ConcatDataset([train_ds] * opts.train_repeats)
    return TrainData(samples, train_ds, val_ds, report, incomplete, io.read_stage_meta(opts.dataroot))
