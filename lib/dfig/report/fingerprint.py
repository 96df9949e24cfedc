"""The GAN fingerprint: mean LNP amplitude spectrum per class, from an LNP tree."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig.core.spectra import mean_spectra_by_class
from dfig.data.layout import LNP_EXTS, discover


def _centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    t, left = (h - size) // 2, (w - size) // 2
    return a[t : t + size, left : left + size]


def class_mean_spectra(
    lnp_root: str | os.PathLike[str], split: str = "test", n: int = 64, seed: int = 0, channels: int = 1
) -> dict[str, Any]:
    """Mean amplitude spectrum (``(|F|+1e-8)^0.8``, shifted, as the classifier computes it) per class.

    Draws up to ``n`` LNPs per class of ``split`` (seeded), centre-crops them to the smallest size,
    and averages them with :func:`dfig.core.spectra.mean_spectra_by_class` (the one class-mean spectrum).
    Returns ``{"real": [H,W], "fake": [H,W], "n": {...}, "size": S, "split": split}``.
    """
    from dfig.data.images import read_lnp

    samples = discover(Path(lnp_root), splits=(split,), exts=LNP_EXTS)[split]
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"split": split, "n": {}}
    arrays: dict[str, list[np.ndarray]] = {}
    for cls in ("real", "fake"):
        sel = [s for s in samples if s.cls == cls]
        idx = rng.choice(len(sel), size=min(n, len(sel)), replace=False) if sel else []
        arrays[cls] = [read_lnp(sel[i].path) for i in sorted(idx)]
        out["n"][cls] = len(arrays[cls])
    if not all(arrays.values()):
        raise ValueError(f"{lnp_root}/{split}: need LNPs of both classes for the class-mean spectra")
    size = min(min(a.shape[0], a.shape[1]) for v in arrays.values() for a in v)
    out["size"] = size
    labels = {"real": 0, "fake": 1}
    batches = [
        (
            torch.from_numpy(np.stack([_centre_crop(a, size) for a in arrs])).permute(0, 3, 1, 2).float(),
            torch.full((len(arrs),), labels[cls]),
        )
        for cls, arrs in arrays.items()
    ]
    means = mean_spectra_by_class(batches, channels=channels)
    for cls, lab in labels.items():
        out[cls] = means[lab][0].numpy()
    return out


def spectra_summary(means: dict[str, Any]) -> dict[str, Any]:
    """Numbers behind the mean-spectrum figure: energy ratios of the fake and real mean spectra."""
    real, fake = means["real"], means["fake"]
    h, w = real.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h // 2, xx - w // 2) / (min(h, w) / 2)
    high = r > 0.5
    return {
        "split": means["split"],
        "n": means["n"],
        "size": means["size"],
        "mean_amplitude_real": float(real.mean()),
        "mean_amplitude_fake": float(fake.mean()),
        "high_freq_ratio_fake_over_real": float(fake[high].mean() / max(real[high].mean(), 1e-12)),
        "max_log_ratio": float(np.max(np.abs(np.log(fake + 1e-12) - np.log(real + 1e-12)))),
    }


__all__ = ["class_mean_spectra", "spectra_summary"]
