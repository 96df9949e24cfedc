""":func:`train`: setup -> epochs (train, validate, decide) -> finish.

The recipe follows the original (CNNDetection -> DFIG): Adam(lr, betas=(beta1, 0.999)),
``BCEWithLogits`` on one logit, validation every ``val_every`` epochs, early stopping with patience
``earlystop_epoch`` on ``earlystop_metric``; when patience runs out the learning rate drops by 10 and
training continues; it stops when the learning rate falls below ``min_lr``, after ``epochs`` epochs,
or after the epoch that crosses the wall-clock budget ``max_minutes``. Only rank 0 writes.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dfig import io
from dfig.accel import seed_everything
from dfig.stages.train.checkpoints import (
    BEST,
    LATEST,
    LOG_FIELDS,
    checkpoint_payload,
    format_row,
    load_checkpoint,
    save_checkpoint,
    write_log,
)
from dfig.stages.train.data import TrainData, build_loaders, data_loader
from dfig.stages.train.distributed import DistInfo, barrier, broadcast_object, setup_device, wrap_ddp
from dfig.stages.train.evaluation import evaluate_best, validate
from dfig.stages.train.loop import amp_precision, build_model, fit_spec_stats, make_scaler, run_epoch
from dfig.stages.train.options import TrainOptions, jsonable_options
from dfig.stages.train.state import Plateau, TrainState, get_lr, score_of, set_lr

__all__ = [
    "Run",
    "build_state",
    "finish",
    "run_one_epoch",
    "setup",
    "summary",
    "train",
    "validate_and_decide",
]


@dataclass
class Run:
    """What a training run works with: options, device, data, state, the stepped network, the record
    every checkpoint carries (``record``) and the validation loader."""

    opts: TrainOptions
    device: torch.device
    dist_info: DistInfo
    data: TrainData
    state: TrainState
    net: nn.Module
    record: dict[str, Any]
    val_loader: Any

    @property
    def run_dir(self) -> Path:
        """``<checkpoints_dir>/<name>``."""
        return self.opts.run_dir


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train a detector with ``opts``; return final/best val metrics, epochs, ``stopped_by``, time, paths.

    Arguments: ``opts``. Returns: the summary (also written to ``summary.json``). ``stopped_by`` is
    one of ``"epochs"`` (all epochs ran), ``"early_stop"`` (lr fell below ``min_lr``), ``"max_minutes"``.
    """
    run = setup(opts, t_start=time.time())
    start_epoch, stopped_by = run.state.epoch, "epochs"
    while run.state.epoch < opts.epochs:
        stop = run_one_epoch(run)
        if stop:
            stopped_by = stop
            break
    return finish(run, start_epoch, stopped_by)


def setup(opts: TrainOptions, t_start: float) -> Run:
    """Validate ``opts``, pick the device (join ``torchrun``), seed, check the output folder, build the
    data and the state (resumed from ``model_epoch_latest.pth`` with ``opts.resume``).

    Arguments: ``opts``; ``t_start`` when the run started (``time.time()``). Returns: the :class:`Run`.
    """
    opts.validate()
    if opts.num_threads > 0:
        torch.set_num_threads(opts.num_threads)
    device, dist_info = setup_device(opts.device)
    seed_everything(opts.seed + dist_info.rank)
    if dist_info.is_main:
        from dfig.clierrors import check_writable

        check_writable(opts.run_dir, "--checkpoints_dir")
    data = build_loaders(opts, dist_info, device)
    state = build_state(opts, device, t_start)
    if opts.resume:
        latest = opts.run_dir / LATEST
        if not latest.is_file():
            raise FileNotFoundError(f"--resume: {latest} not found; train without --resume first")
        state.load_state_dict(load_checkpoint(latest, map_location=device), restore_rng=not dist_info.enabled)
    else:  # spec_norm="freq": per-frequency statistics of the training split (resume: from the checkpoint)
        fit_spec_stats(state.model, data.train, opts, device)
    record = {
        "options": jsonable_options(opts),
        "config": state.model.config() if hasattr(state.model, "config") else {},
        "features": data.features,
        "world_size": dist_info.world_size,
        "torch": str(torch.__version__),
        "data_report": data.report,
        "incomplete_input": data.incomplete,
    }
    pin, persistent = device.type == "cuda", opts.workers > 0
    val_loader = data_loader(data.val, opts, shuffle=False, seed=opts.seed, pin=pin, persistent=persistent)
    net = wrap_ddp(state.model, device, dist_info)
    return Run(opts, device, dist_info, data, state, net, record, val_loader)


def build_state(opts: TrainOptions, device: torch.device, t_start: float) -> TrainState:
    """A fresh :class:`TrainState`: the model of ``opts`` on ``device``, Adam, the plateau schedule, the
    grad scaler (fp16 only). Arguments: ``opts``, ``device``, ``t_start``. Returns: the state."""
    model = build_model(opts).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=opts.lr, betas=(opts.beta1, 0.999), weight_decay=opts.weight_decay
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotuned conv algorithms pay off
    plateau = Plateau(
        patience=opts.earlystop_epoch,
        delta=opts.earlystop_delta,
        min_lr=opts.min_lr,
        mode="min" if opts.earlystop_metric == "loss" else "max",
    )
    return TrainState(model, optimizer, plateau, make_scaler(device, opts.amp), t_start=t_start)


def run_one_epoch(run: Run) -> str | None:
    """Train one epoch, then (rank 0) validate, decide and write the checkpoints and the log.

    Arguments: ``run``. Returns: why training stops now (``"early_stop"``, ``"max_minutes"``) or None.
    """
    opts, state = run.opts, run.state
    t_ep = time.time()
    train_loss, lr_used = run_epoch(state, run.net, run.data.train, opts, run.device, run.dist_info)
    decision: dict[str, Any] = {"action": "", "stop": None}
    if run.dist_info.is_main:
        row: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            "lr": lr_used,
            "train_loss": train_loss,
        }
        if state.epoch % opts.val_every == 0 or state.epoch == opts.epochs:
            decision = validate_and_decide(run, row)
        total_min = state.minutes()
        over_budget = opts.max_minutes is not None and total_min >= opts.max_minutes
        if decision["stop"] is None and over_budget and state.epoch < opts.epochs:
            decision["stop"] = "max_minutes"
            warnings.warn(
                f"CUT SHORT [train {opts.name}]: the time budget max_minutes={opts.max_minutes} stopped it "
                f"after epoch {state.epoch} of {opts.epochs}; its numbers depend on this machine's speed "
                "and are reported as cut short, never as the profile's result",
                stacklevel=2,
            )
        row.update(
            seconds=round(time.time() - t_ep, 2), minutes_total=round(total_min, 3), action=decision["action"]
        )
        state.log.append(row)
        save_checkpoint(
            run.run_dir / LATEST,
            checkpoint_payload(state, run.record, state.epoch, row, state.best_threshold),
        )
        write_log(run.run_dir, state.log)
        if opts.progress:
            print(format_row(row), flush=True)
    decision = broadcast_object(decision, run.dist_info)
    if "lr" in decision:
        set_lr(state.optimizer, decision["lr"])
    return decision["stop"]


def validate_and_decide(run: Run, row: dict[str, Any]) -> dict[str, Any]:
    """Validate, record the val metrics in ``row``, step the early-stopping schedule and act on it
    (save the best checkpoint, divide the lr, stop). Returns: ``{"action", "stop", "lr"}``."""
    from dfig.core.metrics import choose_threshold

    opts, state = run.opts, run.state
    y, p, vm = validate(state.model, run.val_loader, run.data.train, opts, run.device)
    row.update(
        val_loss=vm["loss"],
        val_acc=vm.get("acc"),
        val_ap=vm.get("ap"),
        val_auc=vm.get("roc_auc"),
        val_real_acc=vm.get("real_acc"),
        val_fake_acc=vm.get("fake_acc"),
    )
    action = state.scheduler.step(score_of(vm, opts.earlystop_metric), get_lr(state.optimizer), state.epoch)
    stop = None
    if action == "improved":
        state.best_threshold, state.best_val = float(choose_threshold(y, p)), vm
        payload = checkpoint_payload(state, run.record, state.epoch, vm, state.best_threshold)
        save_checkpoint(run.run_dir / BEST, payload)
    elif action == "decay" and opts.lr_policy == "plateau":
        set_lr(state.optimizer, get_lr(state.optimizer) / state.scheduler.factor)
    elif action == "stop" and opts.lr_policy == "plateau":
        stop = "early_stop"
    return {"action": action, "stop": stop, "lr": get_lr(state.optimizer)}


def finish(run: Run, start_epoch: int, stopped_by: str) -> dict[str, Any]:
    """Keep a best checkpoint, evaluate it on val/test (``evaluate_test``), write ``summary.json``.

    Arguments: ``run``; ``start_epoch`` the epoch this session started at; ``stopped_by``. Returns:
    the summary dict :func:`train` returns.
    """
    state, opts, main = run.state, run.opts, run.dist_info.is_main
    best_p = run.run_dir / BEST
    if not best_p.is_file() and main:  # no validation ran (e.g. resume past epochs): keep latest as best
        save_checkpoint(best_p, checkpoint_payload(state, run.record, state.epoch, {}, state.best_threshold))
    result = summary(run, start_epoch, stopped_by)
    data_report = run.data.report
    if main and opts.evaluate_test:
        result.update(evaluate_best(opts, run.run_dir, run.data.samples, run.device))
        if "test" in result.get("eval_data_report", {}):
            data_report["test"] = result.pop("eval_data_report")["test"]
    result["total_minutes"] = state.minutes()  # training + test evaluation
    result["skipped_files"] = sum(len(r["failed"]) for r in data_report.values())
    if main:
        io.save_json(result, run.run_dir / "summary.json")
    barrier(run.dist_info)
    return result


def summary(run: Run, start_epoch: int, stopped_by: str) -> dict[str, Any]:
    """The run's summary before test evaluation: epochs, stop reason, best/last metrics, paths, setup."""
    state, run_dir = run.state, run.run_dir
    return {
        "name": run.opts.name,
        "epochs": state.epoch,
        "start_epoch": start_epoch,
        "stopped_by": stopped_by,
        "steps": state.step,
        "best_epoch": state.scheduler.best_epoch,
        "best_val_metrics": state.best_val,
        "threshold": state.best_threshold,
        "last_epoch_log": {k: state.log[-1].get(k) for k in LOG_FIELDS} if state.log else {},
        "train_minutes": state.minutes(),  # training and validation, before the test evaluation
        "paths": {
            "run_dir": str(run_dir),
            "best": str(run_dir / BEST),
            "latest": str(run_dir / LATEST),
            "log_csv": str(run_dir / "log.csv"),
        },
        "features": run.data.features,
        "options": run.record["options"],
        "world_size": run.dist_info.world_size,
        "device": str(run.device),
        "data_report": run.data.report,
        "incomplete_input": run.data.incomplete,
        "precision": amp_precision(run.device, run.opts.amp),
    }
