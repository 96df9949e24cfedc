"""The DFIG detector: LNP -> FFT amplitude/phase -> attention fusion -> backbone -> one logit.

:func:`build_detector` makes a :class:`DFIGDetector` (optionally loading official ImageNet weights,
:mod:`dfig.core.models.pretrained`); :func:`load_detector` rebuilds one from a training checkpoint
(read by :func:`dfig.weights.read_checkpoint`) and refuses files that hold another backbone or mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dfig.core.models.backbones import arch_key, build_backbone
from dfig.core.models.fusion import (
    FUSIONS,
    LNP_CHANNELS,
    Fusion,
    SpecOnly,
    build_spec_norm,
    frequency_coords,
    mode_key,
)
from dfig.core.models.pretrained import init_stem_from_rgb, load_backbone_weights, resolve_pretrained
from dfig.core.spectra import SPECTRA_CHANNELS, amplitude_phase
from dfig.registry import check_name
from dfig.weights import CheckpointMismatchError, key_list, read_checkpoint, unwrap_state_dict

#: version of the ``config`` dict stored in checkpoints
CONFIG_FORMAT = 1


class DFIGDetector(nn.Module):
    """``forward(x: [B, 3, H, W] normalised LNP) -> logits [B]`` (P(fake) = sigmoid(logit)).

    Spectra are computed inside (:func:`dfig.core.spectra.amplitude_phase`), scaled by ``spec_norm``,
    fused by ``FUSIONS[mode]`` and classified by ``BACKBONES[arch]``. ``spec_size``: the spectra's
    size (the training crop; needed by ``spec_norm="freq"``). ``spec_coords``: two frequency-coordinate
    channels (:func:`dfig.core.models.fusion.frequency_coords`) appended to the backbone input, so
    that the convolutions know which frequency they look at.
    """

    def __init__(
        self,
        arch: str = "res50",
        mode: int | str = 0,
        *,
        spectra_channels: int = 1,
        spec_norm: str = "none",
        stem_init: str = "random",
        spec_size: int | None = None,
        spec_coords: bool = False,
    ) -> None:
        super().__init__()
        if spectra_channels not in SPECTRA_CHANNELS:
            raise ValueError(f"spectra_channels must be one of {SPECTRA_CHANNELS}, got {spectra_channels!r}")
        if spec_coords and not FUSIONS[mode_key(mode)].needs_spectra:
            raise ValueError(f"spec_coords needs spectral channels; mode {mode!r} has none")
        self.arch = arch_key(arch)
        self.mode = mode_key(mode)
        self.spectra_channels = spectra_channels
        self.spec_norm_name = spec_norm
        self.stem_init = stem_init
        self.spec_size, self.spec_coords = spec_size, bool(spec_coords)
        self.fusion = FUSIONS[self.mode](spectra_channels)
        self.spec_norm = build_spec_norm(spec_norm, channels=2 * spectra_channels, size=spec_size)
        self.in_channels = self.fusion.out_channels + (2 if self.spec_coords else 0)
        self.backbone = build_backbone(self.arch, in_channels=self.in_channels)
        self.pretrained_report: dict[str, Any] | None = None

    def spectra(self, x: Tensor) -> Tensor:
        """``cat[amplitude, phase]`` of ``x`` after ``spec_norm``: ``[B, 2 * spectra_channels, H, W]``."""
        amp, phase = amplitude_phase(x, channels=self.spectra_channels)
        return self.spec_norm(torch.cat([amp, phase], dim=1))

    def fuse(self, x: Tensor) -> Tensor:
        """The backbone's input for ``x``: ``[B, in_channels, H, W]`` (for inspection and figures)."""
        if x.ndim != 4 or x.shape[1] != LNP_CHANNELS:
            raise ValueError(f"DFIGDetector expects a [B, 3, H, W] LNP batch, got shape {tuple(x.shape)}")
        spec = self.spectra(x) if self.fusion.needs_spectra else None
        if spec is not None:
            spec = spec.to(x.dtype)
        fused = self.fusion(x, spec)
        if self.spec_coords:
            coords = frequency_coords(x.shape[-1], fused).expand(len(x), -1, -1, -1)
            fused = torch.cat([fused, coords], dim=1)
        return fused

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(self.fuse(x)).squeeze(-1)

    def config(self) -> dict[str, Any]:
        """What :func:`load_detector` needs to rebuild this model (stored in checkpoints)."""
        return {
            "format": CONFIG_FORMAT,
            "arch": self.arch,
            "mode": self.mode,
            "spectra_channels": self.spectra_channels,
            "spec_norm": self.spec_norm_name,
            "stem_init": self.stem_init,
            "spec_size": self.spec_size,
            "spec_coords": self.spec_coords,
            "in_channels": self.in_channels,
            "pretrained": self.pretrained_report,
        }

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch}, mode={self.mode!r}, spectra_channels={self.spectra_channels}, "
            f"spec_norm={self.spec_norm_name}, in_channels={self.in_channels}"
        )


#: how the stem is initialised when pretrained weights are loaded
STEM_INITS: tuple[str, ...] = ("random", "rgb")


def build_detector(
    arch: str,
    mode: int | str,
    *,
    spectra_channels: int = 1,
    pretrained: str | os.PathLike[str] | None = None,
    stem_init: str = "random",
    spec_norm: str = "none",
    spec_size: int | None = None,
    spec_coords: bool = False,
) -> DFIGDetector:
    """Build a :class:`DFIGDetector`; optionally load ImageNet weights into the backbone.

    ``pretrained``: ``None`` (random init), a file path, a :mod:`dfig.weights` registry name
    (``"resnet50"``, ``"resnet34"``, ``"mobilenet_v2"``, ``"mobilenetv2_c5e733a8"``) or
    ``"imagenet"`` (the backbone's default registry file). Stem and head are never loaded; every other
    key must load (:func:`load_pretrained_backbone`). ``stem_init="rgb"`` (needs ``pretrained``)
    copies the pretrained RGB stem filters into the LNP channels and their mean over RGB into every
    other channel; ``"random"`` keeps the fresh (Kaiming) stem. The load report is kept in
    ``model.pretrained_report`` and in ``model.config()``. ``spec_size`` and ``spec_coords``: see
    :class:`DFIGDetector`.

    Arguments: ``arch`` and ``mode`` (registry names), the rest keyword-only. Returns: the detector.
    Raises :class:`dfig.registry.UnknownNameError` for an unknown name.
    """
    check_name(stem_init, STEM_INITS, "stem_init")
    if stem_init == "rgb" and pretrained is None:
        raise ValueError(
            "stem_init='rgb' copies pretrained RGB filters: pass pretrained=<file or registry name>"
        )
    model = DFIGDetector(
        arch,
        mode,
        spectra_channels=spectra_channels,
        spec_norm=spec_norm,
        stem_init=stem_init,
        spec_size=spec_size,
        spec_coords=spec_coords,
    )
    if pretrained is not None:
        path, name = resolve_pretrained(pretrained, model.arch)
        report, stem_w = load_backbone_weights(model.backbone, model.arch, path)
        report["weights"] = name
        if stem_init == "rgb":
            report["stem_init"] = init_stem_from_rgb(
                model.backbone, model.arch, stem_w, lnp_channels=lnp_channels_in_stem(model.fusion)
            )
        model.pretrained_report = report
    return model


def lnp_channels_in_stem(fusion: Fusion) -> int:
    """How many leading backbone-input channels carry the LNP (RGB order) for ``stem_init='rgb'``."""
    return 0 if isinstance(fusion, SpecOnly) else fusion.lnp_channels


def describe_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """Guess the backbone, mode and input channels a detector state dict holds (for error messages)."""
    arch = None
    if "backbone.fc.weight" in sd:
        arch = {2048: "res50", 512: "res34"}.get(int(sd["backbone.fc.weight"].shape[1]))
    elif "backbone.classifier.1.weight" in sd:
        arch = "mobilev2"
    stem = sd.get("backbone.conv1.weight", sd.get("backbone.features.0.0.weight"))
    in_ch = int(stem.shape[1]) if stem is not None else None
    att = sd.get("fusion.att.body.0.weight")
    mode: int | str | None = None
    if att is not None and in_ch is not None:
        mode = 1 if int(att.shape[0]) == in_ch else 0
    elif in_ch is not None:
        mode = {3: "lnp"}.get(in_ch, "2 or spec")
    return {"arch": arch, "mode": mode, "in_channels": in_ch}


def _check_fits(model: DFIGDetector, sd: Mapping[str, Tensor], path: Path) -> None:
    target = model.state_dict()
    missing = [k for k in target if k not in sd]
    unexpected = [k for k in sd if k not in target]
    shapes = [
        f"{k} file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in target.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        held = describe_state_dict(sd)
        raise CheckpointMismatchError(
            f"{path}: its weights do not fit a {model.arch} mode {model.mode!r} detector "
            f"(in_channels={model.in_channels}); the weights look like backbone={held['arch']}, "
            f"mode={held['mode']}, in_channels={held['in_channels']}. First mismatches: "
            f"missing [{key_list(missing, 5)}]; unexpected [{key_list(unexpected, 5)}]; shapes [{'; '.join(shapes[:5])}]"
        )


def _read_detector(path: Path, map_location: Any, trusted: bool) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The checkpoint dict (``{"model": sd, ...}``) and its state dict without ``module.``."""
    ckpt = read_checkpoint(path, map_location=map_location, trusted=trusted)
    if not isinstance(ckpt, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    if not isinstance(ckpt.get("model"), Mapping):
        ckpt = {"model": dict(ckpt)}
    return dict(ckpt), unwrap_state_dict(ckpt, path, key="model")


def _held_config(
    path: Path, ckpt: Mapping[str, Any], sd: Mapping[str, Tensor], expect_arch: str | None, expect_mode: Any
) -> dict[str, Any]:
    """The stored config, or one made from ``expect_*`` for a bare state dict; refuse another arch/mode."""
    cfg = ckpt.get("config")
    if cfg is None:
        if expect_arch is None or expect_mode is None:
            held = describe_state_dict(sd)
            raise CheckpointMismatchError(
                f"{path}: no stored config; pass expect_arch and expect_mode (the weights look like "
                f"backbone={held['arch']}, mode={held['mode']})"
            )
        cfg = {"arch": expect_arch, "mode": expect_mode}
    cfg = {**cfg, "arch": arch_key(cfg["arch"]), "mode": mode_key(cfg["mode"])}
    held_arch, held_mode = cfg["arch"], cfg["mode"]
    if expect_arch is not None and arch_key(expect_arch) != held_arch:
        raise CheckpointMismatchError(
            f"{path} holds a {held_arch} detector (mode {held_mode!r}), not {arch_key(expect_arch)}: "
            f"use --arch {held_arch} (backbone {held_arch}) or pick a {arch_key(expect_arch)} checkpoint"
        )
    if expect_mode is not None and mode_key(expect_mode) != held_mode:
        raise CheckpointMismatchError(
            f"{path} holds a mode {held_mode!r} detector ({held_arch}), not mode {mode_key(expect_mode)!r}: "
            f"use --mode {held_mode} or pick a mode {mode_key(expect_mode)!r} checkpoint"
        )
    return cfg


def load_detector(
    checkpoint_path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    expect_arch: str | None = None,
    expect_mode: int | str | None = None,
    trusted: bool = False,
) -> tuple[DFIGDetector, dict[str, Any]]:
    """Rebuild a trained detector from a checkpoint; returns ``(model in eval mode, checkpoint dict)``.

    The checkpoint is a dict with ``"model"`` (state dict) and ``"config"`` (``DFIGDetector.config()``).
    ``expect_arch``/``expect_mode``: refuse (naming what the file holds) when they differ from the
    stored config; for a bare state dict without config they say what to build. The file is read by
    :func:`dfig.weights.read_checkpoint` with ``weights_only=True`` unless ``trusted=True``.
    Raises ``FileNotFoundError`` or :class:`CheckpointMismatchError` naming the file.
    """
    path = Path(checkpoint_path)
    ckpt, sd = _read_detector(path, map_location, trusted)
    cfg = _held_config(path, ckpt, sd, expect_arch, expect_mode)
    model = DFIGDetector(
        cfg["arch"],
        cfg["mode"],
        spectra_channels=int(cfg.get("spectra_channels", 1)),
        spec_norm=cfg.get("spec_norm", "none"),
        stem_init=cfg.get("stem_init", "random"),
        spec_size=cfg.get("spec_size"),
        spec_coords=bool(cfg.get("spec_coords", False)),
    )
    model.pretrained_report = cfg.get("pretrained")
    _check_fits(model, sd, path)
    model.load_state_dict(sd, strict=True)
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    model.eval()
    return model, ckpt


__all__ = [
    "CONFIG_FORMAT",
    "STEM_INITS",
    "DFIGDetector",
    "build_detector",
    "describe_state_dict",
    "lnp_channels_in_stem",
    "load_detector",
]
