"""Fusion of the LNP with its spectra, and the optional scaling of the spectral channels.

- :data:`FUSIONS`: ``0`` concat[LNP, Att(amp, phase)], ``1`` Att(concat[LNP, amp, phase]),
  ``2`` concat[LNP, amp, phase] (the paper's modes), plus ablations ``"lnp"`` (LNP only, 3 channels;
  also the plain-RGB baseline when fed RGB images) and ``"spec"`` (amplitude + phase only).
  :data:`TRAIN_MODES` is derived from it.
- :data:`SPEC_NORMS`: optional scaling of the spectral channels before fusion (``"none"`` = the
  original; ``"batchnorm"``, ``"instance"``, ``"log"``).
"""

from __future__ import annotations

from collections.abc import Callable

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


SPEC_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda c: nn.Identity(),
    "batchnorm": lambda c: nn.BatchNorm2d(c, affine=False),
    "instance": InstanceStandardize,
    "log": FixedLogScale,
}


def build_spec_norm(name: str, *, channels: int) -> nn.Module:
    """The spectral scaling ``name`` for ``channels`` channels (``cat[amplitude, phase]``).

    Arguments: ``name`` (a :data:`SPEC_NORMS` key), ``channels``. Returns: the module. Raises
    :class:`dfig.registry.UnknownNameError` listing the valid names.
    """
    return lookup(SPEC_NORMS, name, "spec_norm")(channels)


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
    "Fusion",
    "InstanceStandardize",
    "LNPOnly",
    "SpecOnly",
    "build_spec_norm",
    "mode_key",
]
