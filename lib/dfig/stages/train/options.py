"""Training settings: :class:`TrainOptions` (the one place for every default) and the CLI parser.

One snake_case name per setting, used alike by ``TrainOptions``, the profiles' ``04_train`` keys and
the ``04_train`` notebook's parameters. The original DFIG/CNNDetection flags (``--niter --cropSize
--loadSize --no_resize --batchSize --eval_cropSize``) are accepted on the command line as aliases
only (:data:`CLI_ALIASES`), and old checkpoints that stored those names still load
(:func:`options_from_dict`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.core.models.backbones import ARCHS
from dfig.core.models.fusion import TRAIN_MODES
from dfig.data.cache import CACHE_MODES, DEFAULT_MAX_CACHE_MB
from dfig.data.splits import SAMPLE_EXTS

__all__ = [
    "ARCHS",
    "CLI_ALIASES",
    "EARLYSTOP_METRICS",
    "EVAL_CROPS",
    "LR_POLICIES",
    "OPTION_RANGES",
    "SAMPLE_EXTS",
    "TRAIN_MODES",
    "TrainOptions",
    "build_parser",
    "jsonable_options",
    "options_from_args",
    "options_from_dict",
    "parse_mode",
]

EARLYSTOP_METRICS: tuple[str, ...] = ("acc", "auc", "ap", "loss")
LR_POLICIES: tuple[str, ...] = ("plateau", "cosine")
EVAL_CROPS: tuple[str, ...] = ("center", "full", "grid")

#: the original DFIG/CNNDetection names -> the one name of the setting (CLI aliases and old checkpoints;
#: ``no_resize`` is handled apart: it means ``load_size=0``)
CLI_ALIASES: dict[str, str] = {
    "niter": "epochs",
    "cropSize": "crop_size",
    "loadSize": "load_size",
    "batchSize": "batch_size",
    "eval_cropSize": "eval_crop_size",
}


@dataclass
class TrainOptions:
    """All training settings and their defaults (the only place they are written down).

    Profiles (``04_train`` keys) and the ``04_train`` notebook use these names; see the module doc for
    the original flag names the CLI still accepts.
    """

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
    load_size: int = 256  # shorter side after resizing; 0 = no resize (keeps the noise intact)
    crop_size: int = 224  # random crop (train) / center crop (val, test)
    no_crop: bool = False
    no_flip: bool = False
    blur_prob: float = 0.0
    blur_sig: tuple[float, float] = (0.0, 3.0)
    jpg_prob: float = 0.0
    jpg_qual: tuple[int, int] = (30, 100)
    epochs: int = 100  # maximum number of epochs (original flag: --niter)
    earlystop_epoch: int = 5  # patience (epochs without improvement)
    earlystop_metric: str = "acc"  # acc (original) | auc | ap | loss
    earlystop_delta: float = 0.001  # minimum improvement that resets the patience
    min_lr: float = 1e-6  # stop when the lr falls below this
    lr_policy: str = "plateau"  # plateau (original: /10 when patience runs out) | cosine
    warmup_epochs: int = 0  # ours: linear warm-up (cosine policy)
    train_repeats: int = 1  # ours: passes over the training set per epoch (more random crops)
    eval_crop: str = "center"  # center (original) | full (load_size image) | grid (multi-crop mean)
    eval_crop_size: int | None = None  # ours: center-crop size for val/test (None = crop_size)
    eval_grid: int = 3  # grid: eval_grid x eval_grid crops averaged
    pretrained: str | None = None  # backbone weights: a path, a registry name, or None (random)
    stem_init: str = "random"  # random | rgb (copy the RGB stem filters to the LNP channels)
    spec_norm: str = "none"  # normalisation of the spectral channels (see dfig.core.models); "freq":
    # log, then per-frequency standardisation measured on the training split (stored in the checkpoint)
    spec_coords: bool = False  # ours: two frequency-coordinate channels appended to the backbone input
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
                self.batch_size >= 1 and self.epochs >= 1 and self.train_repeats >= 1,
                "batch_size, epochs and train_repeats must be >= 1",
            ),
            (self.load_size >= 0, f"load_size must be >= 0 (0 = no resize), got {self.load_size}"),
            (self.cache in CACHE_MODES, f"cache must be one of {CACHE_MODES}, got {self.cache!r}"),
            (
                self.spec_norm != "freq" or (not self.no_crop and self.eval_crop != "full"),
                "spec_norm='freq' measures its statistics on crop_size spectra: it needs cropping "
                f"(no_crop false) and eval_crop center or grid, got no_crop={self.no_crop}, "
                f"eval_crop={self.eval_crop!r}",
            ),
            (
                self.spec_norm != "freq" or self.eval_crop_size in (None, self.crop_size),
                f"spec_norm='freq' needs eval_crop_size = crop_size ({self.crop_size}), got {self.eval_crop_size}",
            ),
            (bool(self.dataroot), "dataroot is required (an LNP tree {train,val,test}/{real,fake})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        for name, (low, high) in OPTION_RANGES.items():
            v = getattr(self, name)
            if v is None or isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if not (low[0] < v or (low[1] and v == low[0])) or (high and not v <= high):
                rule = f"{'>=' if low[1] else '>'} {low[0]:g}" + (f" and <= {high:g}" if high else "")
                raise ValueError(f"{name} must be {rule}, got {v}")

    @property
    def run_dir(self) -> Path:
        """``<checkpoints_dir>/<name>`` (default checkpoints_dir: :func:`dfig.paths.checkpoints_dir`)."""
        base = Path(self.checkpoints_dir) if self.checkpoints_dir else paths.checkpoints_dir(self.profile)
        return base / self.name


#: the range of each numeric option: ((lowest, whether it may equal it), highest or None); None values
#: (max_minutes, max_train...) mean "no limit" and always pass
OPTION_RANGES: dict[str, tuple[tuple[float, bool], float | None]] = {
    "crop_size": ((1, True), None),
    "lr": ((0, False), None),
    "min_lr": ((0, True), None),
    "beta1": ((0, True), 0.999999),
    "weight_decay": ((0, True), None),
    "blur_prob": ((0, True), 1),
    "jpg_prob": ((0, True), 1),
    "earlystop_epoch": ((0, True), None),
    "earlystop_delta": ((0, True), None),
    "warmup_epochs": ((0, True), None),
    "eval_grid": ((1, True), None),
    "eval_crop_size": ((1, True), None),
    "val_every": ((1, True), None),
    "bn_recalibrate": ((0, True), None),
    "num_threads": ((0, True), None),
    "workers": ((0, True), None),
    "max_train": ((1, True), None),
    "center_region": ((1, True), None),
    "max_minutes": ((0, False), None),
    "max_cache_mb": ((0, True), None),
}


def parse_mode(mode: int | str) -> int | str:
    """``"0"`` -> 0; ``"lnp"`` stays a string; anything else is returned unchanged (validated later)."""
    if isinstance(mode, str) and mode.strip().lstrip("-").isdigit():
        return int(mode)
    return mode


def options_from_dict(stored: Mapping[str, Any]) -> TrainOptions:
    """:class:`TrainOptions` from a checkpoint's ``options`` record, old key names included.

    Arguments: ``stored`` what ``asdict(TrainOptions)`` gave when the checkpoint was written (this
    version, or an older one with ``niter``/``cropSize``/``loadSize``/``no_resize``/``eval_cropSize``).
    Returns: the options; keys this version does not know are ignored.
    """
    d = {CLI_ALIASES.get(k, k): v for k, v in stored.items()}
    if d.pop("no_resize", False):
        d["load_size"] = 0
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in d.items() if k in known})


def jsonable_options(opts: TrainOptions) -> dict[str, Any]:
    """``asdict(opts)`` with the tuples as lists (what checkpoints and summaries store).

    Arguments: ``opts``. Returns: a dict of plain values.
    """
    d = asdict(opts)
    d["blur_sig"], d["jpg_qual"] = list(d["blur_sig"]), list(d["jpg_qual"])
    return d


# ---------------------------------------------------------------------------------------------
# command line


def _csv_floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in str(text).replace(",", " ").split())


def _none_or_str(text: str) -> str | None:
    return None if text.lower() in ("", "none") else text


def _add_option(ap: argparse.ArgumentParser, name: str, default: Any) -> None:
    """One ``--name`` flag for a :class:`TrainOptions` field, typed by its default."""
    flags = [f"--{name}", *(f"--{old}" for old, new in CLI_ALIASES.items() if new == name)]
    kw: dict[str, Any] = {"dest": name, "default": default}
    if len(flags) > 1:
        kw["help"] = f"(original flag: {', '.join(flags[1:])})"
    if isinstance(default, bool):
        kw["action"] = argparse.BooleanOptionalAction
        flags = flags[:1]
    elif name in ("blur_sig", "jpg_qual"):
        kw.update(type=_csv_floats, help="two values, 'a,b' or 'a b'")
    elif name == "train_mode":
        kw.update(type=parse_mode, help="0 | 1 | 2 | lnp | spec")
    elif name in ("pretrained", "checkpoints_dir"):
        kw["type"] = _none_or_str
    elif name == "max_minutes":
        kw["type"] = float
    elif name in ("max_train", "eval_crop_size", "center_region"):
        kw["type"] = int
    else:
        kw["type"] = type(default)
    ap.add_argument(*flags, **kw)


def build_parser() -> argparse.ArgumentParser:
    """argparse parser: one ``--<name>`` flag per :class:`TrainOptions` field, plus the original
    DFIG/CNNDetection flags as aliases (:data:`CLI_ALIASES`; ``--no_resize`` = ``--load_size 0``).

    Returns: the parser (``dest`` of every flag is the field name).
    """
    ap = argparse.ArgumentParser(
        prog="python -m dfig.train",
        description="Train a DFIG detector on an LNP tree (CNNDetection recipe).",
        epilog="Original DFIG/CNNDetection flags accepted as aliases: "
        + ", ".join(f"--{old} = --{new}" for old, new in CLI_ALIASES.items())
        + ", --no_resize = --load_size 0.",
    )
    defaults = TrainOptions()
    for f in dataclasses.fields(TrainOptions):
        _add_option(ap, f.name, getattr(defaults, f.name))
    ap.add_argument(
        "--no_resize", action="store_true", default=False, help="(original flag) same as --load_size 0"
    )
    return ap


def options_from_args(argv: Sequence[str] | None = None) -> TrainOptions:
    """:class:`TrainOptions` from command-line arguments (aliases resolved).

    Arguments: ``argv`` (default ``sys.argv[1:]``). Returns: the options (not yet validated).
    """
    ns = vars(build_parser().parse_args(argv))
    if ns.pop("no_resize"):
        ns["load_size"] = 0
    for k in ("blur_sig", "jpg_qual"):
        v = tuple(ns[k])
        ns[k] = (v[0], v[0]) if len(v) == 1 else v
    return TrainOptions(**ns)
