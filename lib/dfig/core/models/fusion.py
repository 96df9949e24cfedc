"""Fusion of the LNP with its spectra, and the optional scaling of the spectral channels.

- :data:`FUSIONS`: ``0`` concat[LNP, Att(amp, phase)], ``1`` Att(concat[LNP, amp, phase]),
  ``2`` concat[LNP, amp, phase] (the paper's modes), plus ablations ``"lnp"`` (LNP only, 3 channels;
  also the plain-RGB baseline when fed RGB images) and ``"spec"`` (amplitude + phase only).
  :data:`TRAIN_MODES` is derived from it.
- :data:`SPEC_NORMS`: optional scaling of the spectral channels before fusion (``"none"`` = the
  original; ``"batchnorm"``, ``"instance"``, ``"log"``, ``"freq"``: log, then per-frequency
  standardisation with statistics measured on the training split, :class:`FreqStandardize`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from dfig.registry import UnknownNameError, lookup

LNP_CHANNELS = 3


class AttentionBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, channel attention (reduction 1 by default), plus the block input.

    Channel attention: avg-pool -> conv1x1 -> ReLU -> conv1x1 -> sigmoid -> multiply.
    """

    def __init__(self, channels: int, reduction: int = 1) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channels = channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        r = self.body(x)
        return r * self.ca(r) + x


class Fusion(nn.Module):
    """Base class: ``forward(lnp, spec)`` -> backbone input with :attr:`out_channels` channels.

    ``spec`` is ``cat[amplitude, phase]`` (``2 * spectra_channels`` channels), or ``None`` when
    :attr:`needs_spectra` is False.
    """

    needs_spectra = True

    def __init__(self, spectra_channels: int = 1, lnp_channels: int = LNP_CHANNELS) -> None:
        super().__init__()
        self.spectra_channels = spectra_channels
        self.lnp_channels = lnp_channels
        self.spec_channels = 2 * spectra_channels
        self.out_channels = self._out_channels()

    def _out_channels(self) -> int:
        return self.lnp_channels + self.spec_channels

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ConcatAttSpec(Fusion):
    """Mode 0: ``concat[LNP, Att(amplitude, phase)]``."""

    def __init__(self, spectra_channels: int = 1, lnp_channels: int = LNP_CHANNELS) -> None:
        super().__init__(spectra_channels, lnp_channels)
        self.att = AttentionBlock(self.spec_channels)

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:
        return torch.cat([lnp, self.att(spec)], dim=1)


class AttAll(Fusion):
    """Mode 1: ``Att(concat[LNP, amplitude, phase])``."""

    def __init__(self, spectra_channels: int = 1, lnp_channels: int = LNP_CHANNELS) -> None:
        super().__init__(spectra_channels, lnp_channels)
        self.att = AttentionBlock(self.out_channels)

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:
        return self.att(torch.cat([lnp, spec], dim=1))


class Concat(Fusion):
    """Mode 2: ``concat[LNP, amplitude, phase]`` (no attention)."""

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:
        return torch.cat([lnp, spec], dim=1)


class LNPOnly(Fusion):
    """Ablation ``"lnp"``: the LNP (or an RGB image) alone, 3 channels."""

    needs_spectra = False

    def _out_channels(self) -> int:
        return self.lnp_channels

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:
        return lnp


class SpecOnly(Fusion):
    """Ablation ``"spec"``: amplitude and phase alone."""

    def _out_channels(self) -> int:
        return self.spec_channels

    def forward(self, lnp: Tensor, spec: Tensor | None) -> Tensor:
        return spec


FUSIONS: dict[int | str, type[Fusion]] = {
    0: ConcatAttSpec,
    1: AttAll,
    2: Concat,
    "lnp": LNPOnly,
    "spec": SpecOnly,
}


#: the fusion modes a detector can be trained in (the profile/notebook ``train_mode`` values)
TRAIN_MODES: tuple[int | str, ...] = tuple(FUSIONS)


def mode_key(mode: int | str) -> int | str:
    """Normalise a fusion mode: ``0``/``"0"`` -> ``0``, ``"lnp"`` -> ``"lnp"``.

    Arguments: ``mode`` (int or str). Returns: the :data:`FUSIONS` key. Raises
    :class:`dfig.registry.UnknownNameError` listing the valid modes.
    """
    key: int | str = mode
    if isinstance(mode, str):
        s = mode.strip().lower()
        key = int(s) if s.isdigit() else s
    if isinstance(key, bool) or key not in FUSIONS:
        raise UnknownNameError("fusion mode", mode, FUSIONS)
    return key


# spectral scaling (amplitude and phase have other ranges than the normalised LNP)


class FixedLogScale(nn.Module):
    """``"log"``: amplitude -> ``log(amplitude)``, phase -> ``phase / pi`` (fixed, no state)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.n_amp = channels // 2

    def forward(self, spec: Tensor) -> Tensor:
        amp, phase = spec[:, : self.n_amp], spec[:, self.n_amp :]
        return torch.cat([torch.log(amp.clamp_min(1e-12)), phase / torch.pi], dim=1)


class InstanceStandardize(nn.Module):
    """``"instance"``: each image's channel -> zero mean, unit std over H, W (no running state)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, spec: Tensor) -> Tensor:
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        std = spec.std(dim=(-2, -1), keepdim=True, unbiased=False)
        return (spec - mean) / (std + self.eps)


class FreqStandardize(nn.Module):
    """``"freq"``: :class:`FixedLogScale`, then ``(s - mean) / std`` per channel and frequency.

    ``mean`` and ``std`` (buffers ``[channels, size, size]``, saved in the state dict and so in every
    checkpoint) are measured on the training split before training (:meth:`fit`, called by
    ``dfig.stages.train``); until then they are 0 and 1 (:attr:`fitted` False). The spread is floored
    at ``min_std`` (frequencies that hardly vary in training, such as the phase at zero frequency of
    images with a positive mean, must not blow up at test time). Inputs must have the spectral size
    the statistics were measured at (the training crop).
    """

    def __init__(self, channels: int, size: int, min_std: float = 0.1) -> None:
        super().__init__()
        self.size, self.min_std = int(size), min_std
        self.log_scale = FixedLogScale(channels)
        self.register_buffer("mean", torch.zeros(channels, self.size, self.size))
        self.register_buffer("std", torch.ones(channels, self.size, self.size))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has measured the statistics (stored as ``count``, the spectra used)."""
        return int(self.count) > 0

    @torch.no_grad()
    def fit(self, spectra: Iterable[Tensor]) -> int:
        """Measure mean and spread per frequency over batches of raw spectra ``cat[amplitude, phase]``.

        Arguments: ``spectra`` iterable of ``[B, channels, size, size]`` tensors. Returns: the number
        of spectra used. Raises ``ValueError`` for no spectra or another size.
        """
        total = total_sq = None
        n = 0
        for spec in spectra:
            s = self.log_scale(self._checked(spec)).double()
            total = s.sum(0) if total is None else total + s.sum(0)
            total_sq = (s * s).sum(0) if total_sq is None else total_sq + (s * s).sum(0)
            n += len(s)
        if total is None or total_sq is None or n < 2:
            raise ValueError("spec_norm='freq': need at least 2 training spectra to measure the statistics")
        mean = total / n
        var = (total_sq / n - mean * mean).clamp_min(0.0) * n / (n - 1)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().clamp_min(self.min_std).float())
        self.count.fill_(n)
        return n

    def _checked(self, spec: Tensor) -> Tensor:
        if tuple(spec.shape[-2:]) != (self.size, self.size):
            raise ValueError(
                f"spec_norm='freq' holds statistics for {self.size}x{self.size} spectra, got "
                f"{tuple(spec.shape[-2:])}: score crops of the training size (eval_crop_size = crop_size)"
            )
        return spec

    def forward(self, spec: Tensor) -> Tensor:
        s = self.log_scale(self._checked(spec))
        return (s - self.mean) / self.std


def _freq(channels: int, size: int | None = None) -> nn.Module:
    if not size:
        raise ValueError("spec_norm='freq' needs the spectral size (spec_size: the training crop)")
    return FreqStandardize(channels, size)


SPEC_NORMS: dict[str, Callable[..., nn.Module]] = {
    "none": lambda c, size=None: nn.Identity(),
    "batchnorm": lambda c, size=None: nn.BatchNorm2d(c, affine=False),
    "instance": lambda c, size=None: InstanceStandardize(c),
    "log": lambda c, size=None: FixedLogScale(c),
    "freq": _freq,
}


def build_spec_norm(name: str, *, channels: int, size: int | None = None) -> nn.Module:
    """The spectral scaling ``name`` for ``channels`` channels (``cat[amplitude, phase]``).

    Arguments: ``name`` (a :data:`SPEC_NORMS` key), ``channels``; ``size`` the spectra's height and
    width (needed by ``"freq"``, whose statistics are per frequency). Returns: the module. Raises
    :class:`dfig.registry.UnknownNameError` listing the valid names.
    """
    return lookup(SPEC_NORMS, name, "spec_norm")(channels, size)


def frequency_coords(size: int, like: Tensor) -> Tensor:
    """Two coordinate channels ``[1, 2, size, size]`` (vertical, horizontal frequency in ``[-1, 1]``,
    the fftshift layout of :func:`dfig.core.spectra.amplitude_phase`: zero frequency at the centre).

    Arguments: ``size``; ``like`` a tensor whose dtype and device the result takes. Returns: the channels.
    """
    f = (torch.arange(size, device=like.device, dtype=torch.float32) - size // 2) / max(size // 2, 1)
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    return torch.stack([fy, fx])[None].to(like.dtype)


__all__ = [
    "FUSIONS",
    "LNP_CHANNELS",
    "SPEC_NORMS",
    "TRAIN_MODES",
    "AttAll",
    "AttentionBlock",
    "Concat",
    "ConcatAttSpec",
    "FixedLogScale",
    "FreqStandardize",
    "Fusion",
    "InstanceStandardize",
    "LNPOnly",
    "SpecOnly",
    "build_spec_norm",
    "frequency_coords",
    "mode_key",
]
