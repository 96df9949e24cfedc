"""One training epoch: the model of the options, mixed precision, the optimiser step, precise BN.

:func:`run_epoch` is what :func:`dfig.stages.train.train` calls once per epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dfig.stages.train.distributed import DistInfo
from dfig.stages.train.options import TrainOptions
from dfig.stages.train.state import TrainState, cosine_lr, get_lr, set_lr

__all__ = [
    "BN_RECAL_SEED_OFFSET",
    "amp_precision",
    "SPEC_STATS_SEED_OFFSET",
    "build_model",
    "fit_spec_stats",
    "make_scaler",
    "recalibrate_bn",
    "run_epoch",
    "train_one_epoch",
    "train_step",
]

#: the precise-BN pass draws its batches from a loader seeded ``seed + BN_RECAL_SEED_OFFSET``: a fixed
#: offset, so that it is repeatable and independent of the training epochs (seeded ``seed * 1000 + epoch``)
BN_RECAL_SEED_OFFSET = 7


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
        spec_size=None if opts.no_crop else opts.crop_size,
        spec_coords=opts.spec_coords,
    )


#: the pass that measures ``spec_norm="freq"`` statistics draws its crops from a loader seeded
#: ``seed + SPEC_STATS_SEED_OFFSET`` (the global RNG is restored afterwards: training is unchanged)
SPEC_STATS_SEED_OFFSET = 11


def fit_spec_stats(model: nn.Module, train_ds: Any, opts: TrainOptions, device: torch.device) -> int:
    """Measure ``spec_norm="freq"``'s per-frequency mean and spread on one pass over the training set.

    Arguments: ``model`` (a detector; nothing happens unless its ``spec_norm`` has a ``fit`` and its
    fusion reads spectra);
    ``train_ds`` the training dataset (its random crops and flips, as training sees them); ``opts``;
    ``device``. Returns: the number of spectra measured (0 when the model has no such statistics).
    The global RNG state is saved and restored, so the training steps draw what they would without it.
    """
    from dfig.core.spectra import amplitude_phase
    from dfig.stages.train.data import data_loader

    norm = getattr(model, "spec_norm", None)
    fusion = getattr(model, "fusion", None)
    if not hasattr(norm, "fit") or not getattr(fusion, "needs_spectra", True):
        return 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opts.seed + SPEC_STATS_SEED_OFFSET)
        loader = data_loader(train_ds, opts, shuffle=False, seed=opts.seed + SPEC_STATS_SEED_OFFSET)
        spectra = (
            torch.cat(amplitude_phase(b[0].to(device), channels=model.spectra_channels), dim=1)
            for b in loader
        )
        return norm.fit(spectra)


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
    from dfig.progress import tqdm

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


def run_epoch(
    state: TrainState,
    net: nn.Module,
    train_ds: Any,
    opts: TrainOptions,
    device: torch.device,
    dist_info: DistInfo,
) -> tuple[float, float]:
    """Train epoch ``state.epoch`` (0-based) of ``opts``: cosine lr if chosen, one pass; then ``state.step``
    and ``state.epoch`` (finished epochs) are advanced.

    Arguments: ``state``; ``net`` the model to step (DDP-wrapped when distributed); ``train_ds`` the
    training dataset; ``opts``, ``device``, ``dist_info``. Returns: ``(mean train loss, lr used)``.
    """
    from dfig.stages.train.data import data_loader

    epoch = state.epoch
    if opts.lr_policy == "cosine":
        set_lr(state.optimizer, cosine_lr(opts.lr, epoch, opts.epochs, opts.warmup_epochs, floor=opts.min_lr))
    lr_used = get_lr(state.optimizer)
    loader = data_loader(
        train_ds,
        opts,
        shuffle=True,
        seed=opts.seed * 1000 + epoch,
        dist_info=dist_info,
        epoch=epoch,
        pin=device.type == "cuda",
    )  # new per epoch: per-epoch seeds keep resume exact
    loss, n_steps = train_one_epoch(
        net,
        loader,
        state.optimizer,
        device,
        state.scaler,
        opts.amp,
        opts.channels_last,
        progress=opts.progress and dist_info.is_main,
        desc=f"epoch {epoch + 1}/{opts.epochs}",
    )
    state.step += n_steps
    state.epoch += 1
    return loss, lr_used
