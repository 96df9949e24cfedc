"""The DFIG detector: LNP -> FFT amplitude/phase -> attention fusion -> backbone -> one logit.

Registries (plain dicts):

- :data:`FUSIONS`: ``0`` concat[LNP, Att(amp, phase)], ``1`` Att(concat[LNP, amp, phase]),
  ``2`` concat[LNP, amp, phase] (the paper's modes), plus ablations ``"lnp"`` (LNP only, 3 channels;
  also the plain-RGB baseline when fed RGB images) and ``"spec"`` (amplitude + phase only).
- :data:`SPEC_NORMS`: optional scaling of the spectral channels before fusion (``"none"`` = the
  original; ``"batchnorm"``, ``"instance"``, ``"log"``).
- :data:`BACKBONES`: ``"res50"``, ``"res34"``, ``"mobilev2"`` (torchvision models with an
  N-channel stem and a one-logit head).

:func:`build_detector` makes a :class:`DFIGDetector` (optionally loading official ImageNet weights
with a strict key check, :func:`load_pretrained_backbone`); :func:`load_detector` rebuilds one from a
training checkpoint and refuses files that hold another backbone or mode.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from dfig.core.spectra import SPECTRA_CHANNELS, amplitude_phase

CONFIG_FORMAT = 1
LNP_CHANNELS = 3


class PretrainedMismatchError(RuntimeError):
    """An ImageNet weights file does not fit the backbone (keys or shapes other than stem/head)."""


class CheckpointMismatchError(ValueError):
    """A detector checkpoint holds another backbone/mode than asked for, or its weights do not fit."""


# =============================================================================================
# attention block and fusion modes


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


def mode_key(mode: int | str) -> int | str:
    """Normalise a fusion mode: ``0``/``"0"`` -> ``0``, ``"lnp"`` -> ``"lnp"``; clear error otherwise."""
    key: int | str = mode
    if isinstance(mode, str):
        s = mode.strip().lower()
        key = int(s) if s.isdigit() else s
    if isinstance(key, bool) or key not in FUSIONS:
        raise ValueError(f"unknown fusion mode {mode!r}; choose one of {list(FUSIONS)}")
    return key


# =============================================================================================
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


def _spec_norm(name: str, channels: int) -> nn.Module:
    if name not in SPEC_NORMS:
        raise ValueError(f"unknown spec_norm {name!r}; choose one of {list(SPEC_NORMS)}")
    return SPEC_NORMS[name](channels)


# =============================================================================================
# backbones


def _set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its stem and head live.

    Calling the spec, ``BACKBONES[name](in_channels)``, returns the torchvision model with an
    ``in_channels``-channel stem (no bias) and a one-logit head.
    """

    name: str
    constructor: Callable[..., nn.Module]
    stem: str  # dotted module name of the first conv
    stem_out: int
    stem_kernel: int
    stem_stride: int
    stem_padding: int
    head: str  # dotted module name of the final Linear
    feature_dim: int
    weights: tuple[str, ...]  # dfig.weights registry names, preferred first

    def __call__(self, in_channels: int) -> nn.Module:
        model = self.constructor(weights=None, num_classes=1000)
        stem = nn.Conv2d(
            in_channels, self.stem_out, self.stem_kernel, self.stem_stride, self.stem_padding, bias=False
        )
        nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
        _set_module(model, self.stem, stem)
        head = nn.Linear(self.feature_dim, 1)
        nn.init.normal_(head.weight, 0.0, 0.02)  # CNNDetection's head init
        nn.init.zeros_(head.bias)
        _set_module(model, self.head, head)
        return model

    @property
    def stem_keys(self) -> tuple[str, ...]:
        return (f"{self.stem}.weight",)

    @property
    def head_keys(self) -> tuple[str, ...]:
        return (f"{self.head}.weight", f"{self.head}.bias")


BACKBONES: dict[str, BackboneSpec] = {
    "res50": BackboneSpec(
        "res50", torchvision.models.resnet50, "conv1", 64, 7, 2, 3, "fc", 2048, ("resnet50",)
    ),
    "res34": BackboneSpec(
        "res34", torchvision.models.resnet34, "conv1", 64, 7, 2, 3, "fc", 512, ("resnet34",)
    ),
    "mobilev2": BackboneSpec(
        "mobilev2",
        torchvision.models.mobilenet_v2,
        "features.0.0",
        32,
        3,
        2,
        1,
        "classifier.1",
        1280,
        ("mobilenetv2_c5e733a8", "mobilenet_v2"),
    ),
}

ARCH_ALIASES = {
    "resnet50": "res50",
    "resnet34": "res34",
    "mobilenet_v2": "mobilev2",
    "mobilenetv2": "mobilev2",
}


def arch_key(arch: str) -> str:
    """Canonical backbone name (``"resnet50"`` -> ``"res50"``); clear error for unknown names."""
    a = ARCH_ALIASES.get(arch.strip().lower(), arch.strip().lower())
    if a not in BACKBONES:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {list(BACKBONES)}")
    return a


# =============================================================================================
# the detector


class DFIGDetector(nn.Module):
    """``forward(x: [B, 3, H, W] normalised LNP) -> logits [B]`` (P(fake) = sigmoid(logit)).

    Spectra are computed inside (:func:`dfig.core.spectra.amplitude_phase`), scaled by ``spec_norm``,
    fused by ``FUSIONS[mode]`` and classified by ``BACKBONES[arch]``.
    """

    def __init__(
        self,
        arch: str = "res50",
        mode: int | str = 0,
        spectra_channels: int = 1,
        spec_norm: str = "none",
        stem_init: str = "random",
    ) -> None:
        super().__init__()
        if spectra_channels not in SPECTRA_CHANNELS:
            raise ValueError(f"spectra_channels must be one of {SPECTRA_CHANNELS}, got {spectra_channels!r}")
        self.arch = arch_key(arch)
        self.mode = mode_key(mode)
        self.spectra_channels = spectra_channels
        self.spec_norm_name = spec_norm
        self.stem_init = stem_init
        self.fusion = FUSIONS[self.mode](spectra_channels)
        self.spec_norm = _spec_norm(spec_norm, 2 * spectra_channels)
        self.in_channels = self.fusion.out_channels
        self.backbone = BACKBONES[self.arch](self.in_channels)
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
        return self.fusion(x, spec)

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
            "in_channels": self.in_channels,
            "pretrained": self.pretrained_report,
        }

    def extra_repr(self) -> str:
        return (
            f"arch={self.arch}, mode={self.mode!r}, spectra_channels={self.spectra_channels}, "
            f"spec_norm={self.spec_norm_name}, in_channels={self.in_channels}"
        )


STEM_INITS = ("random", "rgb")


def build_detector(
    arch: str,
    mode: int | str,
    spectra_channels: int = 1,
    pretrained: str | os.PathLike[str] | None = None,
    stem_init: str = "random",
    spec_norm: str = "none",
) -> DFIGDetector:
    """Build a :class:`DFIGDetector`; optionally load ImageNet weights into the backbone.

    ``pretrained``: ``None`` (random init), a file path, a :mod:`dfig.weights` registry name
    (``"resnet50"``, ``"resnet34"``, ``"mobilenet_v2"``, ``"mobilenetv2_c5e733a8"``) or
    ``"imagenet"`` (the backbone's default registry file). Stem and head are never loaded; every other
    key must load (:func:`load_pretrained_backbone`). ``stem_init="rgb"`` (needs ``pretrained``)
    copies the pretrained RGB stem filters into the LNP channels and their mean over RGB into every
    other channel; ``"random"`` keeps the fresh (Kaiming) stem. The load report is kept in
    ``model.pretrained_report`` and in ``model.config()``.
    """
    if stem_init not in STEM_INITS:
        raise ValueError(f"unknown stem_init {stem_init!r}; choose one of {STEM_INITS}")
    if stem_init == "rgb" and pretrained is None:
        raise ValueError(
            "stem_init='rgb' copies pretrained RGB filters: pass pretrained=<file or registry name>"
        )
    model = DFIGDetector(arch, mode, spectra_channels, spec_norm=spec_norm, stem_init=stem_init)
    if pretrained is not None:
        path, name = resolve_pretrained(pretrained, model.arch)
        report, stem_w = _load_backbone_file(model.backbone, model.arch, path)
        report["weights"] = name
        if stem_init == "rgb":
            report["stem_init"] = init_stem_from_rgb(
                model.backbone, model.arch, stem_w, lnp_channels=_lnp_channels_in_stem(model.fusion)
            )
        model.pretrained_report = report
    return model


def _lnp_channels_in_stem(fusion: Fusion) -> int:
    """How many leading backbone-input channels carry the LNP (RGB order) for ``stem_init='rgb'``."""
    return 0 if isinstance(fusion, SpecOnly) else fusion.lnp_channels


def init_stem_from_rgb(
    backbone: nn.Module, arch: str, rgb_weight: Tensor | None, lnp_channels: int = 3
) -> str:
    """Initialise the N-channel stem from pretrained RGB filters ``[out, 3, k, k]``.

    The first ``lnp_channels`` input channels copy the RGB filters; every other channel gets their
    mean over RGB. Returns a one-line description for the report.
    """
    spec = BACKBONES[arch_key(arch)]
    stem = backbone.get_submodule(spec.stem)
    if rgb_weight is None:
        raise PretrainedMismatchError(
            "stem_init='rgb': the weights file holds no stem filters "
            f"({spec.stem_keys[0]}); use stem_init='random'"
        )
    want = (stem.weight.shape[0], 3, *stem.weight.shape[2:])
    if tuple(rgb_weight.shape) != want:
        raise PretrainedMismatchError(
            f"stem_init='rgb': the file's stem has shape {tuple(rgb_weight.shape)}, expected {want}"
        )
    n_in = stem.weight.shape[1]
    with torch.no_grad():
        w = rgb_weight.to(stem.weight.dtype)
        mean = w.mean(dim=1, keepdim=True)
        k = min(lnp_channels, 3, n_in)
        stem.weight[:, :k] = w[:, :k]
        if n_in > k:
            stem.weight[:, k:] = mean.expand(-1, n_in - k, -1, -1)
    return f"rgb: channels 0..{k - 1} copy the RGB filters, {n_in - k} channel(s) get their RGB mean"


# =============================================================================================
# official ImageNet weights


def resolve_pretrained(pretrained: str | os.PathLike[str], arch: str) -> tuple[Path, str | None]:
    """A weights file from a path, a :mod:`dfig.weights` registry name or ``"imagenet"``.

    Returns ``(path, registry name or None)``. A plain existing path never needs :mod:`dfig.weights`.
    """
    p = Path(pretrained)
    if p.is_file():
        return p, None
    s = str(pretrained)
    spec = BACKBONES[arch_key(arch)]
    if s == "imagenet":
        from dfig import weights

        first_err: Exception | None = None
        for name in spec.weights:
            try:
                return weights.locate(name), name
            except FileNotFoundError as e:  # MissingWeightsError
                first_err = first_err or e
        assert first_err is not None
        raise first_err
    if os.sep not in s and "/" not in s and not s.endswith((".pth", ".pt", ".bin")):
        from dfig import weights

        backbone_names = sorted({n for b in BACKBONES.values() for n in b.weights})
        if s in backbone_names and s in weights.WEIGHTS:
            return weights.locate(s), s
        raise ValueError(
            f"pretrained={s!r} is neither a file nor a backbone weights name "
            f"({', '.join(spec.weights)} for {spec.name}; all: {', '.join(backbone_names)}; "
            "or 'imagenet')"
        )
    raise FileNotFoundError(
        f"pretrained weights file not found: {p} (run `python -m dfig.weights` "
        "to see which files are expected where)"
    )


def read_state_dict(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """Tensors of a checkpoint file, unwrapped from ``state_dict``/``model`` and without ``module.``."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise PretrainedMismatchError(
            f"{path}: not a plain tensor checkpoint (weights_only load failed: {e})"
        ) from e
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise PretrainedMismatchError(f"{path}: expected a state dict, found {type(obj).__name__}")
    sd = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _is_nbt(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _list(keys: Any, n: int = 10) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _convert_by_order(
    sd: dict[str, Tensor], target: dict[str, Tensor], path: Path, layout: str
) -> dict[str, Tensor]:
    """Rename ``sd``'s tensors to ``target``'s keys by order (num_batches_tracked aside), checking every shape."""
    src = [k for k in sd if not _is_nbt(k)]
    dst = [k for k in target if not _is_nbt(k)]
    if len(src) != len(dst):
        raise PretrainedMismatchError(
            f"{path}: {layout} layout holds {len(src)} tensors, the backbone expects {len(dst)}: "
            "not a MobileNetV2 ImageNet file (or a modified one)"
        )
    out: dict[str, Tensor] = {}
    bad = []
    for s, d in zip(src, dst):
        if tuple(sd[s].shape) != tuple(target[d].shape):
            bad.append(f"{s} {tuple(sd[s].shape)} -> {d} {tuple(target[d].shape)}")
        out[d] = sd[s]
        if d.endswith(".running_mean") and s.endswith(".running_mean"):
            nbt = s[: -len("running_mean")] + "num_batches_tracked"
            if nbt in sd:
                out[d[: -len("running_mean")] + "num_batches_tracked"] = sd[nbt]
    if bad:
        raise PretrainedMismatchError(
            f"{path}: {layout} layout mapped by order but shapes differ: {'; '.join(bad[:5])}"
        )
    return out


def _detect_layout(sd: dict[str, Tensor], arch: str) -> str:
    if arch == "mobilev2" and "conv.0.weight" in sd and "features.18.0.weight" not in sd:
        return "mobilenetv2_c5e733a8"
    return "torchvision"


def _load_backbone_file(
    backbone: nn.Module, arch: str, path: str | os.PathLike[str]
) -> tuple[dict[str, Any], Tensor | None]:
    arch = arch_key(arch)
    spec = BACKBONES[arch]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    sd = read_state_dict(path)
    layout = _detect_layout(sd, arch)
    target = backbone.state_dict()
    if layout != "torchvision":
        # the file's head is the same Linear shape as torchvision's 1000-class head
        ref = spec.constructor(weights=None, num_classes=1000).state_dict()
        sd = _convert_by_order(sd, ref, path, layout)
    drop_prefixes = tuple(f"{m}." for m in (spec.stem, spec.head))
    skipped = sorted(k for k in sd if k.startswith(drop_prefixes))
    stem_w = sd.get(spec.stem_keys[0])
    load = {k: v for k, v in sd.items() if not k.startswith(drop_prefixes)}
    bad_shapes = [
        f"{k} file {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in load.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    if bad_shapes:
        raise PretrainedMismatchError(
            f"{path}: not {arch} ImageNet weights; shapes differ for {len(bad_shapes)} tensor(s): "
            f"{'; '.join(bad_shapes[:5])}"
        )
    result = backbone.load_state_dict(load, strict=False)
    expected_missing = set(spec.stem_keys) | set(spec.head_keys)
    missing = {k for k in result.missing_keys if not _is_nbt(k)}
    unexpected = set(result.unexpected_keys)
    if missing != expected_missing or unexpected:
        extra_missing = missing - expected_missing
        raise PretrainedMismatchError(
            f"{path}: does not fit the {arch} backbone ({layout} layout). Only the stem and head may be "
            f"left out, but: missing {len(extra_missing)} key(s) [{_list(extra_missing)}], "
            f"unexpected {len(unexpected)} key(s) [{_list(unexpected)}]. "
            "Check that the file is the official ImageNet checkpoint of this backbone."
        )
    from dfig.weights import describe as weights_describe

    report = {
        "file": str(path),
        "arch": arch,
        "layout": layout,
        "loaded": len(load),
        "skipped": skipped,
        "file_bytes": path.stat().st_size,
        "provenance": weights_describe(path),  # official | stand-in (random weights)
    }
    return report, stem_w


def load_pretrained_backbone(
    model_backbone: nn.Module, arch: str, path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Load an official ImageNet file into a backbone built by ``BACKBONES[arch]``.

    Accepts torchvision layouts (ResNet-50/34, MobileNetV2) and the ``mobilenetv2-c5e733a8.pth``
    layout (renamed by order, every shape checked), files wrapped in ``state_dict``/``model`` and
    ``module.`` prefixes. Stem and head are dropped; every other key must load: any other missing or
    unexpected key raises :class:`PretrainedMismatchError` naming the file and the keys.
    Returns ``{file, arch, layout, loaded, skipped, file_bytes}``.
    """
    report, _ = _load_backbone_file(model_backbone, arch, path)
    return report


# =============================================================================================
# detector checkpoints


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
            f"missing [{_list(missing, 5)}]; unexpected [{_list(unexpected, 5)}]; shapes [{'; '.join(shapes[:5])}]"
        )


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
    stored config; for a bare state dict without config they say what to build. The file is read with
    ``weights_only=True`` unless ``trusted=True``.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as e:
        raise CheckpointMismatchError(
            f"{path}: holds Python objects beyond tensors and plain containers; if you made this file "
            f"yourself, load it with trusted=True ({e})"
        ) from e
    if not isinstance(ckpt, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    if isinstance(ckpt.get("model"), Mapping):
        sd, cfg = dict(ckpt["model"]), ckpt.get("config")
    else:
        sd, cfg = dict(ckpt), None
        ckpt = {"model": sd}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if cfg is None:
        if expect_arch is None or expect_mode is None:
            held = describe_state_dict(sd)
            raise CheckpointMismatchError(
                f"{path}: no stored config; pass expect_arch and expect_mode (the weights look like "
                f"backbone={held['arch']}, mode={held['mode']})"
            )
        cfg = {
            "arch": arch_key(expect_arch),
            "mode": mode_key(expect_mode),
            "spectra_channels": 1,
            "spec_norm": "none",
        }
    held_arch, held_mode = arch_key(cfg["arch"]), mode_key(cfg["mode"])
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
    model = DFIGDetector(
        held_arch,
        held_mode,
        int(cfg.get("spectra_channels", 1)),
        spec_norm=cfg.get("spec_norm", "none"),
        stem_init=cfg.get("stem_init", "random"),
    )
    model.pretrained_report = cfg.get("pretrained")
    _check_fits(model, sd, path)
    model.load_state_dict(sd, strict=True)
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    model.eval()
    return model, dict(ckpt)


__all__ = [
    "ARCH_ALIASES",
    "BACKBONES",
    "FUSIONS",
    "SPEC_NORMS",
    "STEM_INITS",
    "AttentionBlock",
    "BackboneSpec",
    "CheckpointMismatchError",
    "DFIGDetector",
    "Fusion",
    "PretrainedMismatchError",
    "arch_key",
    "build_detector",
    "describe_state_dict",
    "init_stem_from_rgb",
    "load_detector",
    "load_pretrained_backbone",
    "mode_key",
    "read_state_dict",
    "resolve_pretrained",
]
