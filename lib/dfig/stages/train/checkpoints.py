"""Checkpoints and logs of a training run: atomic ``torch.save``, checked reading, ``log.{csv,json}``.

A checkpoint (``model_epoch_best.pth`` / ``model_epoch_latest.pth``) holds the entries of
:meth:`dfig.stages.train.state.TrainState.state_dict` (``model``, ``optimizer``, ``step``, ``epoch``,
``plateau``, ``best_threshold``, ``best_val_metrics``, ``rng``, ``lr``, ``log``, ``elapsed_minutes``,
``scaler``) plus the run record of :func:`checkpoint_payload` (``options``, ``config``, ``features``,
``threshold``, ``val_metrics``, ``world_size``, ``torch``, ``data_report``, ``incomplete_input``).
"""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path
from typing import Any

import torch

from dfig import io, weights

__all__ = [
    "BEST",
    "LATEST",
    "LOG_FIELDS",
    "CheckpointFileError",
    "check_checkpoint_file",
    "checkpoint_payload",
    "disk_full",
    "format_row",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "write_log",
]

#: file names of the best and the latest checkpoint in a run folder
BEST, LATEST = "model_epoch_best.pth", "model_epoch_latest.pth"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` through :func:`dfig.io.atomic_path` (never a truncated checkpoint).

    A write that fails because the disk is full raises ``OSError(ENOSPC)`` naming ``path`` (torch itself
    reports ``RuntimeError: ... unexpected pos``, which never says "disk full"). Returns ``path``.
    """
    try:
        with io.atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except RuntimeError as e:
        if not disk_full(str(e)):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
    return path


def disk_full(message: str) -> bool:
    """Whether a failed ``torch.save`` ran out of space: torch's messages for a short write
    (``unexpected pos``, ``failed writing``), which a full disk or an exceeded quota causes."""
    return "unexpected pos" in message or "failed writing" in message


class CheckpointFileError(weights.CheckpointReadError):
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
    """A training checkpoint through the library's one reader, :func:`dfig.weights.read_checkpoint`.

    Arguments: ``path``, ``map_location``. Returns: what the file holds. The structural check of
    :func:`check_checkpoint_file` runs first (its messages say what is wrong with the file); any read
    failure after it is a :class:`CheckpointFileError`. Never loads arbitrary Python objects.
    """
    p = check_checkpoint_file(path)
    try:
        return weights.read_checkpoint(p, map_location=map_location)
    except weights.CheckpointReadError as e:
        raise CheckpointFileError(f"{e}; use a file dfig.stages.train wrote, or train again") from e


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


def checkpoint_payload(
    state: Any, record: dict[str, Any], epoch: int, val_metrics: dict[str, Any], threshold: float
) -> dict[str, Any]:
    """What a checkpoint file holds: the training state, the run record and this epoch's numbers.

    Arguments: ``state`` a :class:`~dfig.stages.train.state.TrainState`; ``record`` the run's fixed
    entries (options, config, features, world_size, torch, data_report, incomplete_input); ``epoch``
    the finished epochs; ``val_metrics`` and ``threshold`` of this checkpoint. Returns: the dict.
    """
    return {
        **state.state_dict(),
        **record,
        "epoch": epoch,
        "val_metrics": val_metrics,
        "threshold": threshold,
    }


def format_row(row: dict[str, Any]) -> str:
    """One log row as a progress line (``epoch 3 | lr 1.00e-04 | loss 0.6931 | ... | 12s``)."""
    parts = [f"epoch {row['epoch']}", f"lr {row['lr']:.2e}", f"loss {row['train_loss']:.4f}"]
    for k in ("val_loss", "val_acc", "val_auc"):
        if row.get(k) is not None:
            parts.append(f"{k} {row[k]:.4f}")
    parts.append(f"{row['seconds']:.0f}s")
    if row.get("action"):
        parts.append(row["action"])
    return " | ".join(parts)
