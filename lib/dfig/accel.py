"""GPU fast-path helpers shared by the stages: reduced-precision choice, autocast, pinned batches.

Reduced precision is used only where it is checked. ``precision="auto"`` (the stages' default)
means: on CUDA, run the stage's own fidelity check once at startup on its first batch - the same
inputs in fp32 and in the device's reduced dtype (:func:`reduced_precision`: bf16 where
``torch.cuda.is_bf16_supported()``, else fp16) - and keep the reduced dtype only when the check
passes; otherwise (and on CPU, where bf16 is emulated on most processors and slower) fp32.
:func:`choose_precision` does that and returns a record (requested, chosen, the measured agreement)
that the stage stores in its ``dfig_stage.json``.

Works with torch >= 2.4 (``torch.autocast(device_type=...)``, ``torch.amp.GradScaler(device)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Precisions a stage can be asked for; ``auto`` = checked reduced precision on CUDA, else fp32.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
PRECISION_CHOICES: tuple[str, ...] = (*PRECISIONS, "auto")
#: Default for the stages' ``precision`` option.
DEFAULT_PRECISION = "auto"


def torch_dtype(precision: str) -> torch.dtype:
    """``fp32``/``bf16``/``fp16`` -> the torch dtype (``ValueError`` otherwise)."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The one device resolver of the library (stages, notebooks, training).

    Arguments: ``device``: ``None``/``"auto"`` (``cuda`` when a GPU is visible, else ``cpu``), or a
    device string / ``torch.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). Returns: the
    ``torch.device``. Raises ``ValueError`` naming the accepted forms for anything else.
    """
    import torch

    if device is None or str(device).strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"unknown device {device!r}; use auto, cpu, cuda or cuda:<index> ({' '.join(str(e).split())[:120]})"
        ) from None


def seed_everything(seed: int) -> None:
    """The one seeding function: Python's ``random``, NumPy's global stream and torch (every device).

    Arguments: ``seed`` (any int; NumPy gets ``seed % 2**32``). Returns: ``None``.
    """
    import random

    import numpy as np
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - the legacy global stream third-party code draws from
    torch.manual_seed(seed)


def reduced_precision(device: str | torch.device) -> str:
    """The reduced dtype name for ``device``: CUDA bf16 if supported else fp16; CPU bf16."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16"


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for ``fp32``).

    Raises ``ValueError`` for an unknown precision.
    """
    import torch

    dtype = torch_dtype(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def choose_precision(
    run: Callable[[str], Any],
    compare: Callable[[Any, Any], dict[str, Any]],
    device: str | torch.device,
    requested: str = DEFAULT_PRECISION,
    candidate: str | None = None,
) -> tuple[dict[str, Any], Any]:
    """Decide a stage's precision from a fidelity check; return ``(record, outputs of the choice)``.

    Arguments:
        run: ``run(precision) -> outputs`` on the stage's first batch.
        compare: ``compare(ref_fp32, test) -> dict`` with at least ``"passed": bool`` and the
            measured agreement (e.g. mask IoU, residual correlation).
        device: where the stage runs.
        requested: ``fp32``/``bf16``/``fp16`` (used as asked, not checked) or ``auto``: on CUDA
            check the candidate against fp32 and keep it only when ``compare`` passes; on CPU fp32
            unless ``candidate`` is named.
        candidate: the reduced dtype to try (default :func:`reduced_precision` of ``device``);
            naming one also runs the check on CPU (tests, benchmarks).

    Returns:
        ``record`` = ``{"requested", "precision" (chosen), "checked", "candidate", "agreement",
        "reason"}`` and the outputs of ``run(chosen)`` (no extra pass: the check's own outputs).
    """
    if requested not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {requested!r}")
    import torch

    dev = torch.device(device)
    rec: dict[str, Any] = {"requested": requested, "checked": False, "candidate": None, "agreement": None}
    if requested != "auto":
        return {**rec, "precision": requested, "reason": "as requested (not checked)"}, run(requested)
    if dev.type != "cuda" and candidate is None:
        return {**rec, "precision": "fp32", "reason": f"auto on {dev.type}: fp32"}, run("fp32")
    cand = candidate or reduced_precision(dev)
    ref = run("fp32")
    out = run(cand)
    agreement = compare(ref, out)
    ok = bool(agreement.get("passed"))
    rec.update(
        checked=True,
        candidate=cand,
        agreement=agreement,
        precision=cand if ok else "fp32",
        reason=f"{cand} passed the fidelity check" if ok else f"{cand} failed the fidelity check: fp32",
    )
    return rec, (out if ok else ref)


#: DataLoader worker processes that decode/encode beside the model when not given: CPU 0, CUDA up to 8.
MAX_LOADER_WORKERS = 8


def loader_workers(device: str | torch.device) -> int:
    """Default decoding workers for a stage on ``device``: 0 on CPU (the cores run the model),
    ``min(MAX_LOADER_WORKERS, cpu_count - 1)`` on CUDA."""
    import os

    import torch

    if torch.device(device).type != "cuda":
        return 0
    return max(0, min(MAX_LOADER_WORKERS, (os.cpu_count() or 1) - 1))


def drain_done(futures: list[Any]) -> list[Any]:
    """Collect finished futures (re-raising their errors); return the ones still running."""
    for f in futures:
        if f.done():
            f.result()
    return [f for f in futures if not f.done()]


def stack_pinned(arrays: Sequence[Any], pin: bool) -> torch.Tensor:
    """Stack same-shape numpy arrays into one tensor, in page-locked memory when ``pin`` (so that
    ``.to(cuda, non_blocking=True)`` is an asynchronous copy)."""
    import numpy as np
    import torch

    arrs = [np.asarray(a) for a in arrays]
    if not pin:
        return torch.from_numpy(np.stack(arrs))
    dtype = torch.from_numpy(np.empty(0, dtype=arrs[0].dtype)).dtype
    out = torch.empty((len(arrs), *arrs[0].shape), dtype=dtype, pin_memory=True)
    np.stack(arrs, out=out.numpy())
    return out


def device_info(device: str | torch.device) -> dict[str, Any]:
    """What a run executes on: ``{"device", "gpu_name", "cpu", "torch", "cuda"}``."""
    import platform

    import torch

    dev = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    return {
        "device": str(dev),
        "gpu_name": gpu,
        "cpu": cpu,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
    }


#: CPU flags worth naming next to a CPU benchmark (vector units the conv kernels use)
CPU_FLAGS_OF_INTEREST: tuple[str, ...] = (
    "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile",
)  # fmt: skip


def cpu_flags() -> dict[str, Any]:
    """The CPU's vector flags of interest (``/proc/cpuinfo``) and torch's kernel capability level."""
    import torch

    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "flags": [f for f in CPU_FLAGS_OF_INTEREST if f in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
    }


def configure_cpu(num_threads: int = 0) -> dict[str, Any]:
    """Thread settings for a CPU training run; returns what is in force.

    Arguments: ``num_threads`` torch intra-op threads (0 = leave torch's default, one per core).
    Returns: ``{"threads", "interop_threads", "cores"}``.
    """
    import os

    import torch

    if num_threads > 0:
        torch.set_num_threads(int(num_threads))
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cores": os.cpu_count(),
    }


def fast_cpu_model(model: torch.nn.Module, channels_last: bool = True) -> torch.nn.Module:
    """The model in ``channels_last`` memory format (oneDNN's native layout on CPU: no reorders)."""
    import torch

    return model.to(memory_format=torch.channels_last) if channels_last else model


__all__ = [
    "PRECISIONS",
    "PRECISION_CHOICES",
    "torch_dtype",
    "DEFAULT_PRECISION",
    "resolve_device",
    "seed_everything",
    "reduced_precision",
    "autocast",
    "choose_precision",
    "MAX_LOADER_WORKERS",
    "loader_workers",
    "drain_done",
    "stack_pinned",
    "device_info",
    "CPU_FLAGS_OF_INTEREST",
    "cpu_flags",
    "configure_cpu",
    "fast_cpu_model",
]
