"""Devices and distributed setup: ``torchrun`` (``RANK``/``WORLD_SIZE``) -> a process group.

gloo on CPU, nccl on CUDA; the training set is sharded with a ``DistributedSampler`` (see
:func:`dfig.stages.train.data.data_loader`), validation runs on rank 0 and its decision is broadcast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dfig.accel import resolve_device

__all__ = [
    "DistInfo",
    "barrier",
    "broadcast_object",
    "init_distributed",
    "setup_device",
    "wrap_ddp",
]


@dataclass
class DistInfo:
    """This process's place in the job: ``rank``, ``world_size``, ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 (the one that validates and writes)."""
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


def setup_device(device: str) -> tuple[torch.device, DistInfo]:
    """The device of this process and its :class:`DistInfo` (one GPU per rank under ``torchrun``).

    Arguments: ``device`` ``"auto"``, ``"cpu"``, ``"cuda"``, ... Returns: ``(device, dist_info)``.
    """
    dev = resolve_device(device)
    info = init_distributed(dev)
    if dev.type == "cuda" and info.enabled:
        dev = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(dev)
    return dev, info


def wrap_ddp(model: nn.Module, device: torch.device, dist_info: DistInfo) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when distributed, else ``model`` itself."""
    if not dist_info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_object(obj: Any, dist_info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (no-op without distribution)."""
    if not dist_info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(dist_info: DistInfo) -> None:
    """Wait for every rank (no-op without distribution)."""
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()
