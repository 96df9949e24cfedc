"""FFT amplitude and phase of the LNP: the spectral inputs of the detector and of the figures.

The same functions serve the classifier (batched, differentiable, on any device) and the
visualisation notebook (:func:`to_display`, :func:`phase_to_display`, :func:`mean_spectrum`).

Definition (DFIG, DESIGN.md section 4): ``F = fft2(x, norm="ortho")`` over H, W;
``phase = atan2(Im F, Re F)`` in ``[-pi, pi]``; ``amplitude = (|F| + eps) ** gamma`` with
``eps = 1e-8`` and ``gamma = 0.8``; both ``fftshift``-ed (zero frequency at the centre, index
``(H // 2, W // 2)``) and, with ``channels=1`` (the paper), averaged over the colour channels.
``channels=3`` keeps one amplitude and one phase map per colour channel (the Table 5 ablation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dfig.progress import tqdm

SPECTRA_CHANNELS = (1, 3)


def amplitude_phase(
    x: Tensor, channels: int = 1, eps: float = 1e-8, gamma: float = 0.8
) -> tuple[Tensor, Tensor]:
    """Amplitude and phase spectra of a batch ``x`` of shape ``[B, C, H, W]``.

    Returns ``(amp, phase)``, each float32 ``[B, 1, H, W]`` (``channels=1``: mean over the C colour
    channels of the per-channel spectra, as the original DFIG) or ``[B, C, H, W]`` (``channels=3``).
    The FFT always runs in float32, also under autocast. Differentiable.
    """
    if x.ndim != 4:
        raise ValueError(f"amplitude_phase expects a [B, C, H, W] batch, got shape {tuple(x.shape)}")
    if channels not in SPECTRA_CHANNELS:
        raise ValueError(f"channels must be one of {SPECTRA_CHANNELS}, got {channels!r}")
    if channels == 3 and x.shape[1] != 3:
        raise ValueError(f"channels=3 needs a 3-channel input, got {x.shape[1]} channels")
    with torch.autocast(device_type=x.device.type, enabled=False):
        f = torch.fft.fft2(x.float(), dim=(-2, -1), norm="ortho")
        phase = torch.atan2(f.imag, f.real)
        amp = (f.abs() + eps) ** gamma
        amp = torch.fft.fftshift(amp, dim=(-2, -1))
        phase = torch.fft.fftshift(phase, dim=(-2, -1))
        if channels == 1:
            amp = amp.mean(dim=1, keepdim=True)
            phase = phase.mean(dim=1, keepdim=True)
    return amp, phase


def _as_numpy(t: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, Tensor):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _squeeze_hw(a: np.ndarray) -> np.ndarray:
    """[H,W], [1,H,W] or [1,1,H,W] -> [H,W]; [C,H,W] (C=3) -> [H,W,C] for imshow."""
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected one spectrum ([H,W], [C,H,W] or [1,C,H,W]), got shape {a.shape}")
    return a


def to_display(
    amp: Tensor | np.ndarray, log: bool = True, percentiles: tuple[float, float] = (0.5, 99.5)
) -> np.ndarray:
    """One amplitude spectrum as a float array in ``[0, 1]`` for ``imshow``.

    ``log=True`` shows ``log(amp)`` (the spectrum spans orders of magnitude); the range is then
    clipped to the given percentiles so that the DC peak does not flatten everything else.
    Accepts ``[H,W]``, ``[1,H,W]``, ``[C,H,W]`` or ``[1,C,H,W]``; returns ``[H,W]`` or ``[H,W,C]``.
    """
    a = _squeeze_hw(_as_numpy(amp)).astype(np.float64)
    if log:
        a = np.log(np.maximum(a, 1e-12))
    lo, hi = np.percentile(a, percentiles)
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def phase_to_display(phase: Tensor | np.ndarray) -> np.ndarray:
    """A phase spectrum mapped from ``[-pi, pi]`` to ``[0, 1]`` (use a cyclic colour map)."""
    a = _squeeze_hw(_as_numpy(phase))
    return np.clip((a + np.pi) / (2 * np.pi), 0.0, 1.0).astype(np.float32)


def _sum_spectra(
    batches: Iterable[Any],
    channels: int,
    progress: bool,
    device: str | torch.device,
    by_label: bool,
    what: str,
) -> tuple[dict[int, Tensor], dict[int, int]]:
    """Per label (or all under label 0): the sum of the amplitude spectra and the image count."""
    totals: dict[int, Tensor] = {}
    counts: dict[int, int] = {}
    for batch in tqdm(batches, desc=what.replace("_", " "), disable=not progress):
        x = batch[0] if isinstance(batch, tuple | list) else batch
        amp, _ = amplitude_phase(x.to(device), channels=channels)
        y = torch.as_tensor(batch[1]) if by_label else torch.zeros(len(amp), dtype=torch.long)
        y = y.to(amp.device)
        for lab in torch.unique(y).tolist():
            s = amp[y == lab].sum(0)
            if lab in totals and s.shape != totals[lab].shape:
                raise ValueError(
                    f"{what}: images differ in size ({tuple(s.shape)} vs {tuple(totals[lab].shape)}); crop first"
                )
            totals[lab] = totals[lab] + s if lab in totals else s
            counts[lab] = counts.get(lab, 0) + int((y == lab).sum())
    if not totals:
        raise ValueError(f"{what}: no images (empty batches)")
    return totals, counts


def mean_spectrum(
    batches: Iterable[Any], channels: int = 1, progress: bool = False, device: str | torch.device = "cpu"
) -> Tensor:
    """Mean amplitude spectrum ``[channels, H, W]`` over all images of ``batches``.

    ``batches`` yields ``[B, C, H, W]`` tensors or tuples whose first item is one (a DataLoader over
    :class:`dfig.data.dataset.ImageDataset` works as is). Use one loader per class for the GAN
    fingerprint figure, or :func:`mean_spectra_by_class`. All images must share one size.
    Returns: the mean on the CPU. Raises ``ValueError`` for no images or images of several sizes.
    """
    totals, counts = _sum_spectra(batches, channels, progress, device, False, "mean_spectrum")
    return (totals[0] / counts[0]).cpu()


def mean_spectra_by_class(
    batches: Iterable[Any], channels: int = 1, progress: bool = False, device: str | torch.device = "cpu"
) -> dict[int, Tensor]:
    """Mean amplitude spectrum per label: ``{label: [channels, H, W]}`` (the one class-mean spectrum).

    ``batches`` yields ``(images, labels, ...)`` tuples (e.g. a DataLoader over ``ImageDataset``).
    :func:`dfig.report.fingerprint.class_mean_spectra` uses it for the GAN fingerprint of an LNP tree.
    Returns: the means on the CPU, by sorted label. Raises ``ValueError`` as :func:`mean_spectrum`.
    """
    totals, counts = _sum_spectra(batches, channels, progress, device, True, "mean_spectra_by_class")
    return {lab: (totals[lab] / counts[lab]).cpu() for lab in sorted(totals)}


__all__ = [
    "SPECTRA_CHANNELS",
    "amplitude_phase",
    "mean_spectra_by_class",
    "mean_spectrum",
    "phase_to_display",
    "to_display",
]
