"""The denoiser on a batch: CPU allocator, model preparation, residuals, the precision check."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from dfig.accel import DEFAULT_PRECISION, PRECISIONS, autocast, stack_pinned
from dfig.stages.lnp.files import compat_encode

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_cpu_allocator(enabled: bool = True) -> bool:
    """Let glibc keep freed large blocks instead of returning them to the OS (Linux only).

    CycleISP allocates dozens of full-resolution 64-channel tensors per image; by default each is a
    fresh ``mmap`` whose pages the kernel must fault in and zero (measured here: ~1.7 M page faults and
    ~1.5 s of system time per 256x256 image, ~35% of the wall time). With a 1 GiB mmap threshold and no
    trimming the memory is reused. The cost: the process keeps its peak heap until it exits.
    ``enabled=False`` restores glibc's defaults. Returns whether the setting was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_thr, trim_thr = ((1 << 30), (1 << 31) - 1) if enabled else (128 * 1024, 128 * 1024)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_thr)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_thr))


def prepare(denoiser: Any, device: str | torch.device = "cpu", tune_allocator: bool = True) -> Any:
    """Put a torch denoiser on ``device`` in eval mode, channels_last, fused attention blocks (fast path).

    On CPU also :func:`tune_cpu_allocator` (process-wide) unless ``tune_allocator=False``.
    """
    if isinstance(denoiser, torch.nn.Module):
        if torch.device(device).type == "cpu" and tune_allocator:
            tune_cpu_allocator(True)
        dev = torch.device(device)
        denoiser = denoiser.eval().to(dev)
        if dev.type in ("cpu", "cuda"):
            denoiser = denoiser.to(memory_format=torch.channels_last)
        if hasattr(denoiser, "set_fused"):
            denoiser.set_fused(True)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
    return denoiser


def lnp_batch(
    denoiser: Any,
    images: list[np.ndarray] | np.ndarray,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> np.ndarray:
    """Residuals of same-size HxWx3 uint8 images (channel order as given) -> float32 N x H x W x 3.

    On CUDA the uint8 batch is stacked in pinned memory and copied with ``non_blocking``; the
    conversion to float happens on the device. ``precision``: fp32, bf16 or fp16 (autocast).
    """
    dev = torch.device(device)
    u8 = stack_pinned(list(images), pin=dev.type == "cuda")
    x = u8.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if isinstance(denoiser, torch.nn.Module):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(dev, precision):
        r = denoiser.residual(x)
    return r.float().permute(0, 2, 3, 1).cpu().numpy()


#: The LNP fidelity check: reduced precision is kept only when, against fp32 on the same batch, the
#: residuals correlate at least this much ...
LNP_MIN_CORR = 0.999
#: ... and at least this share of compat PNG values (uint8, after the original's arithmetic) is identical.
LNP_MIN_PNG_IDENTICAL = 0.99


def lnp_agreement(ref: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Agreement of residuals ``test`` with ``ref`` (N x H x W x 3): correlation, identical compat PNG
    values, max abs difference, and ``passed`` (>= :data:`LNP_MIN_CORR` and :data:`LNP_MIN_PNG_IDENTICAL`)."""
    a, b = np.asarray(ref, dtype=np.float64).ravel(), np.asarray(test, dtype=np.float64).ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.array_equal(a, b))
    same = float(np.mean(compat_encode(ref) == compat_encode(test)))
    return {
        "corr": corr,
        "png_identical": same,
        "max_abs_diff": float(np.abs(a - b).max()) if a.size else 0.0,
        "min_corr": LNP_MIN_CORR,
        "min_png_identical": LNP_MIN_PNG_IDENTICAL,
        "passed": corr >= LNP_MIN_CORR and same >= LNP_MIN_PNG_IDENTICAL,
    }


def check_lnp_precision(
    denoiser: Any,
    images: list[np.ndarray],
    device: str | torch.device = "cpu",
    requested: str = DEFAULT_PRECISION,
    candidate: str | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """LNP's startup fidelity check on one batch: reduced precision vs fp32; choose the precision.

    Arguments:
        denoiser: prepared torch denoiser (:func:`prepare`); images: same-size HxWx3 uint8.
        requested: ``auto`` checks ``candidate`` (default :func:`dfig.accel.reduced_precision`: bf16
            where supported, else fp16) on CUDA, fp32 on CPU unless ``candidate`` is named;
            ``fp32``/``bf16``/``fp16`` are used as asked.

    Returns:
        ``(record, residuals)``: :func:`dfig.accel.choose_precision`'s record (``agreement`` from
        :func:`lnp_agreement`) and the chosen precision's residuals of ``images``.
    """
    from dfig.accel import choose_precision

    if not isinstance(denoiser, torch.nn.Module):  # classical: no autocast to choose
        return (
            {
                "requested": requested,
                "precision": "fp32",
                "checked": False,
                "candidate": None,
                "agreement": None,
                "reason": "not a torch model: fp32",
            },
            lnp_batch(denoiser, images, device),
        )
    return choose_precision(
        lambda prec: lnp_batch(denoiser, images, device, prec), lnp_agreement, device, requested, candidate
    )


def resolve_precision(
    requested: str, device: torch.device, denoiser: Any, old_meta: dict[str, Any], n_existing: int
) -> str | None:
    """The precision known before any image is seen (None: decided by the check on the first batch).

    ``auto``: a tree being resumed keeps its own precision; CPU or a non-torch denoiser -> fp32.
    """
    if requested != "auto":
        return requested
    if n_existing:
        old = old_meta.get("precision")
        return old if old in PRECISIONS else "fp32"
    if device.type != "cuda" or not isinstance(denoiser, torch.nn.Module):
        return "fp32"
    return None


def set_precision(
    meta: dict[str, Any],
    requested: str,
    device: torch.device,
    denoiser: Any,
    old_meta: dict[str, Any],
    n_existing: int,
) -> str | None:
    """Put the precision known before any image is seen into ``meta``; return it (None: decided later)."""
    chosen = resolve_precision(requested, device, denoiser, old_meta, n_existing)
    meta["precision"] = chosen if chosen is not None else "auto (decided on the first batch)"
    reason = (
        "as requested"
        if requested != "auto"
        else "auto: the existing tree's precision"
        if n_existing
        else f"auto on {device.type}"
    )
    meta["precision_check"] = {
        "requested": requested,
        "precision": chosen,
        "checked": False,
        "reason": reason,
    }
    return chosen


__all__ = [
    "tune_cpu_allocator",
    "prepare",
    "lnp_batch",
    "LNP_MIN_CORR",
    "LNP_MIN_PNG_IDENTICAL",
    "lnp_agreement",
    "check_lnp_precision",
    "resolve_precision",
    "set_precision",
]
