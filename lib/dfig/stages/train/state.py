"""The training state (:class:`TrainState`): everything a checkpoint holds to resume a run exactly.

Also the pure schedule logic it uses: :class:`Plateau` (CNNDetection's early stopping with lr/10
decays), :func:`cosine_lr`, :func:`score_of`, and the RNG state helpers.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Plateau",
    "TrainState",
    "cosine_lr",
    "get_lr",
    "rng_state",
    "score_of",
    "set_lr",
    "set_rng_state",
]


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
        """All fields as a plain dict."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for k, v in state.items():
            setattr(self, k, v)


def score_of(metrics: dict[str, float], criterion: str) -> float:
    """The early-stopping score of a metrics dict (``acc``, ``auc`` -> roc_auc, ``ap``, ``loss``)."""
    key = {"acc": "acc", "auc": "roc_auc", "ap": "ap", "loss": "loss"}[criterion]
    v = metrics.get(key, float("nan"))
    if v is not None and not math.isnan(float(v)):
        return float(v)
    return -math.inf if criterion != "loss" else math.inf


def cosine_lr(base_lr: float, epoch: int, total: int, warmup: int = 0, floor: float = 0.0) -> float:
    """Learning rate of (0-based) ``epoch`` for a cosine schedule with linear warm-up."""
    if warmup > 0 and epoch < warmup:
        return base_lr * (epoch + 1) / warmup
    t = (epoch - warmup) / max(1, total - warmup)
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for g in optimizer.param_groups:
        g["lr"] = lr


def get_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


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


@dataclass
class TrainState:
    """Model, optimizer, lr schedule (``scheduler``: the :class:`Plateau`), grad scaler, counters.

    ``step``/``epoch`` count optimiser steps and finished epochs; the best metric and the early-stop
    counter live in ``scheduler`` (``best``, ``best_epoch``, ``counter``); ``best_threshold`` and
    ``best_val`` are the val threshold and metrics of the best epoch; ``log`` one row per epoch;
    ``elapsed_before`` the minutes of earlier (resumed) sessions. :meth:`state_dict` gives the
    checkpoint entries (names as every earlier version wrote them); :meth:`load_state_dict` reads them.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Plateau
    scaler: Any = None
    step: int = 0
    epoch: int = 0
    best_threshold: float = 0.5
    best_val: dict[str, float] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0
    t_start: float = field(default_factory=time.time)

    def minutes(self) -> float:
        """Training minutes so far, earlier sessions included."""
        return self.elapsed_before + (time.time() - self.t_start) / 60

    def state_dict(self) -> dict[str, Any]:
        """The resumable state as checkpoint entries (tensors and plain containers)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best_threshold": self.best_threshold,
            "best_val_metrics": self.best_val,
            "plateau": self.scheduler.state_dict(),
            "rng": rng_state(),
            "lr": get_lr(self.optimizer),
            "log": self.log,
            "elapsed_minutes": self.minutes(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, ck: dict[str, Any], restore_rng: bool = True) -> None:
        """Restore from a checkpoint dict (this version's or an older one's: missing entries keep defaults).

        Arguments: ``ck`` the checkpoint; ``restore_rng`` also restore the RNG streams (single process).
        """
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.step, self.epoch = int(ck["step"]), int(ck["epoch"])
        self.scheduler.load_state_dict(ck["plateau"])
        self.best_threshold = float(ck.get("best_threshold", 0.5))
        self.best_val = dict(ck.get("best_val_metrics", {}))
        self.elapsed_before = float(ck.get("elapsed_minutes", 0.0))
        self.log = list(ck.get("log", []))
        if restore_rng and "rng" in ck:
            set_rng_state(ck["rng"])
        if self.scaler is not None and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
