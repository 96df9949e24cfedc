"""CNNDetection-style training of a DFIG detector on an LNP tree (``python -m dfig.train``).

The package, one concern per module: :mod:`~dfig.stages.train.options` (``TrainOptions``, the one
place for every default, and the CLI parser with the original flags as aliases),
:mod:`~dfig.stages.train.state` (``TrainState``: model, optimizer, schedule, scaler, counters, with
``state_dict()``/``load_state_dict()``), :mod:`~dfig.stages.train.data` (splits, datasets, loaders),
:mod:`~dfig.stages.train.loop` (one epoch), :mod:`~dfig.stages.train.evaluation` (validation, scoring,
predictions), :mod:`~dfig.stages.train.checkpoints` (atomic save, checked load, logs),
:mod:`~dfig.stages.train.distributed` (``torchrun``/DDP), :mod:`~dfig.stages.train.trainer`
(``train``: setup -> epochs -> finish) and :mod:`~dfig.stages.train.cli` (``main``).

Outputs (only rank 0 writes; every file is written atomically) in ``<checkpoints_dir>/<name>/``:
``model_epoch_best.pth`` and ``model_epoch_latest.pth`` (see :mod:`~dfig.stages.train.checkpoints`),
``log.csv``/``log.json`` (one row per epoch), ``predictions_{val,test}.csv`` of the best checkpoint and
``summary.json``.

``classes`` is accepted for compatibility with the original flags (CNNDetection listed class
subfolders such as ``horse,car``); DFIG has a single class (faces), so ``""`` or ``"face"`` both mean
"the tree itself". Any other value names a subfolder ``dataroot/<split>/<class>/{real,fake}`` and only
one such class is supported.
"""

from __future__ import annotations

from dfig.stages.train.checkpoints import (
    LOG_FIELDS,
    CheckpointFileError,
    check_checkpoint_file,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    write_log,
)
from dfig.stages.train.cli import main
from dfig.stages.train.data import (
    CenterRegion,
    TrainData,
    augment_options,
    build_dataset,
    build_loaders,
    center_region,
    check_both_classes,
    check_input_complete,
    data_loader,
    region_reader,
    report_skipped,
    split_samples,
)
from dfig.stages.train.distributed import DistInfo, broadcast_object, init_distributed
from dfig.stages.train.evaluation import eval_kwargs, evaluate, evaluate_best, predictions_frame, validate
from dfig.stages.train.loop import (
    BN_RECAL_SEED_OFFSET,
    SPEC_STATS_SEED_OFFSET,
    amp_precision,
    build_model,
    fit_spec_stats,
    make_scaler,
    recalibrate_bn,
    run_epoch,
    train_one_epoch,
    train_step,
)
from dfig.stages.train.options import (
    ARCHS,
    CLI_ALIASES,
    EARLYSTOP_METRICS,
    EVAL_CROPS,
    LR_POLICIES,
    SAMPLE_EXTS,
    TRAIN_MODES,
    TrainOptions,
    build_parser,
    jsonable_options,
    options_from_args,
    options_from_dict,
    parse_mode,
)
from dfig.stages.train.state import (
    Plateau,
    TrainState,
    cosine_lr,
    get_lr,
    rng_state,
    score_of,
    set_lr,
    set_rng_state,
)
from dfig.stages.train.trainer import train

__all__ = [
    "ARCHS",
    "BN_RECAL_SEED_OFFSET",
    "CLI_ALIASES",
    "EARLYSTOP_METRICS",
    "EVAL_CROPS",
    "LOG_FIELDS",
    "LR_POLICIES",
    "SAMPLE_EXTS",
    "SPEC_STATS_SEED_OFFSET",
    "TRAIN_MODES",
    "CenterRegion",
    "CheckpointFileError",
    "DistInfo",
    "Plateau",
    "TrainData",
    "TrainOptions",
    "TrainState",
    "amp_precision",
    "augment_options",
    "broadcast_object",
    "build_dataset",
    "build_loaders",
    "build_model",
    "build_parser",
    "center_region",
    "check_both_classes",
    "check_checkpoint_file",
    "check_input_complete",
    "cosine_lr",
    "data_loader",
    "eval_kwargs",
    "evaluate",
    "evaluate_best",
    "fit_spec_stats",
    "get_lr",
    "init_distributed",
    "jsonable_options",
    "load_checkpoint",
    "main",
    "make_scaler",
    "options_from_args",
    "options_from_dict",
    "parse_mode",
    "predictions_frame",
    "read_checkpoint",
    "recalibrate_bn",
    "region_reader",
    "report_skipped",
    "rng_state",
    "run_epoch",
    "save_checkpoint",
    "score_of",
    "set_lr",
    "set_rng_state",
    "split_samples",
    "train",
    "train_one_epoch",
    "train_step",
    "validate",
    "write_log",
]
