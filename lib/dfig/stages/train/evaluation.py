"""Validation and scoring: run a model over a loader, per-epoch val metrics, predictions of the best model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dfig import io
from dfig.io import predictions_frame
from dfig.stages.train.checkpoints import BEST, load_checkpoint
from dfig.stages.train.options import TrainOptions

__all__ = [
    "eval_kwargs",
    "evaluate",
    "evaluate_best",
    "predictions_frame",
    "val_metrics",
    "validate",
]


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
    from dfig.progress import tqdm

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


def val_metrics(y: np.ndarray, p: np.ndarray, loss: float) -> dict[str, float]:
    """The numeric metrics of :func:`dfig.core.metrics.compute_metrics` plus ``loss``."""
    from dfig.core.metrics import compute_metrics

    m = {k: float(v) for k, v in compute_metrics(y, p).items() if isinstance(v, int | float | np.floating)}
    m["loss"] = float(loss)
    return m


def eval_kwargs(opts: TrainOptions) -> dict[str, Any]:
    """Keyword arguments of :func:`evaluate` for ``opts``' evaluation crop (``grid``: crop size and grid).

    Arguments: ``opts`` the run's options. Returns: ``{}`` for a center crop, else ``crop`` and ``grid``.
    """
    if opts.eval_crop == "grid":
        return {"crop": opts.crop_size, "grid": opts.eval_grid}
    return {}


def validate(
    model: nn.Module, val_loader: Any, train_ds: Any, opts: TrainOptions, device: torch.device
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Precise BN (``opts.bn_recalibrate`` training batches), then score the validation set.

    Arguments: ``model`` (unwrapped), ``val_loader``, ``train_ds`` (for the BN pass), ``opts``,
    ``device``. Returns: ``(y, p_fake, metrics)`` with ``metrics`` from :func:`val_metrics`.
    """
    from dfig.stages.train.data import data_loader
    from dfig.stages.train.loop import BN_RECAL_SEED_OFFSET, recalibrate_bn

    if opts.bn_recalibrate:
        bn_loader = data_loader(train_ds, opts, shuffle=True, seed=opts.seed + BN_RECAL_SEED_OFFSET)
        recalibrate_bn(model, bn_loader, device, opts.bn_recalibrate, opts.channels_last)
    y, p, loss = evaluate(
        model, val_loader, device, channels_last=opts.channels_last, return_loss=True, **eval_kwargs(opts)
    )
    return y, p, val_metrics(y, p, loss)


def evaluate_best(
    opts: TrainOptions, run_dir: Path, samples: dict[str, list[Any]], device: torch.device
) -> dict[str, Any]:
    """Evaluate ``model_epoch_best.pth`` on val and test; write ``predictions_{split}.csv``.

    Arguments: ``opts``, ``run_dir``, ``samples`` per split, ``device``. Returns: the best epoch,
    prediction paths, ``{split}_metrics`` (at 0.5 and at the val threshold), the eval bad-file report.
    """
    from dfig.core.metrics import compute_metrics
    from dfig.stages.train.data import build_dataset, data_loader, report_skipped
    from dfig.stages.train.loop import build_model

    ck = load_checkpoint(run_dir / BEST, map_location=device)
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
            data_loader(ds, opts, shuffle=False, seed=opts.seed),
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
        out[f"{split}_metrics"] = plain_metrics(compute_metrics(y, p, 0.5))
        out[f"{split}_metrics_at_val_threshold"] = plain_metrics(compute_metrics(y, p, thr))
    return out


def plain_metrics(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with numpy floats as Python floats."""
    return {k: (float(v) if isinstance(v, np.floating | float) else v) for k, v in d.items()}
