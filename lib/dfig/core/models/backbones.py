"""The backbone registry: how each torchvision backbone is built, and every list derived from it.

:data:`BACKBONES` is the one source of truth. :data:`ARCHS` (canonical names, in table order),
:data:`BACKBONE_NAMES` (display names for tables and the paper) and :data:`IMAGENET_WEIGHTS` (the
official :mod:`dfig.weights` files of each backbone, preferred first) are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dfig.registry import UnknownNameError

if TYPE_CHECKING:  # torch and torchvision load on first build: the names above stay cheap to import
    from torch import nn


def _set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """How to build one backbone, where its stem and head live, its display name and ImageNet files.

    Calling the spec, ``BACKBONES[name](in_channels)``, returns the torchvision model with an
    ``in_channels``-channel stem (no bias) and a one-logit head.
    """

    name: str
    display: str  # name in tables and the paper
    torchvision_name: str  # the constructor in torchvision.models
    stem: str  # dotted module name of the first conv
    stem_out: int
    stem_kernel: int
    stem_stride: int
    stem_padding: int
    head: str  # dotted module name of the final Linear
    feature_dim: int
    weights: tuple[str, ...]  # dfig.weights registry names, preferred first
    aliases: tuple[str, ...] = ()

    def imagenet_model(self) -> nn.Module:
        """The plain torchvision model (3-channel stem, 1000-class head), randomly initialised."""
        import torchvision

        return getattr(torchvision.models, self.torchvision_name)(weights=None, num_classes=1000)

    def __call__(self, in_channels: int) -> nn.Module:
        from torch import nn

        model = self.imagenet_model()
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


#: the d-li14/mobilenetv2.pytorch ImageNet file (the original project's): its registry and layout name
DLI14_MOBILENETV2 = "mobilenetv2_c5e733a8"

_RESNET_STEM = dict(stem="conv1", stem_out=64, stem_kernel=7, stem_stride=2, stem_padding=3, head="fc")

#: the backbones, in the order tables list them
BACKBONES: dict[str, BackboneSpec] = {
    "res50": BackboneSpec(
        name="res50",
        display="ResNet-50",
        torchvision_name="resnet50",
        **_RESNET_STEM,
        feature_dim=2048,
        weights=("resnet50",),
        aliases=("resnet50",),
    ),
    "mobilev2": BackboneSpec(
        name="mobilev2",
        display="MobileNetV2",
        torchvision_name="mobilenet_v2",
        stem="features.0.0",
        stem_out=32,
        stem_kernel=3,
        stem_stride=2,
        stem_padding=1,
        head="classifier.1",
        feature_dim=1280,
        weights=(DLI14_MOBILENETV2, "mobilenet_v2"),
        aliases=("mobilenet_v2", "mobilenetv2"),
    ),
    "res34": BackboneSpec(
        name="res34",
        display="ResNet-34",
        torchvision_name="resnet34",
        **_RESNET_STEM,
        feature_dim=512,
        weights=("resnet34",),
        aliases=("resnet34",),
    ),
}

#: canonical backbone names (the ``arch`` values), in table order
ARCHS: tuple[str, ...] = tuple(BACKBONES)
#: display name of each backbone (tables, figures, the paper)
BACKBONE_NAMES: dict[str, str] = {a: s.display for a, s in BACKBONES.items()}
#: official ImageNet files of each backbone (names in ``dfig.weights.WEIGHTS``), preferred first
IMAGENET_WEIGHTS: dict[str, tuple[str, ...]] = {a: s.weights for a, s in BACKBONES.items()}
#: other accepted spellings of the backbone names
ARCH_ALIASES: dict[str, str] = {al: a for a, s in BACKBONES.items() for al in s.aliases}


def arch_key(arch: str) -> str:
    """Canonical backbone name (``"resnet50"`` -> ``"res50"``).

    Arguments: ``arch`` (a name or alias, any case). Returns: a :data:`ARCHS` name. Raises
    :class:`dfig.registry.UnknownNameError` listing the valid names.
    """
    a = str(arch).strip().lower()
    a = ARCH_ALIASES.get(a, a)
    if a not in BACKBONES:
        raise UnknownNameError("backbone", arch, BACKBONES)
    return a


def build_backbone(arch: str, *, in_channels: int) -> nn.Module:
    """The torchvision backbone ``arch`` with an ``in_channels`` stem and a one-logit head.

    Arguments: ``arch`` (name or alias), ``in_channels``. Returns: the (randomly initialised) model.
    """
    return BACKBONES[arch_key(arch)](in_channels)


__all__ = [
    "ARCHS",
    "ARCH_ALIASES",
    "BACKBONES",
    "BACKBONE_NAMES",
    "DLI14_MOBILENETV2",
    "IMAGENET_WEIGHTS",
    "BackboneSpec",
    "arch_key",
    "build_backbone",
]
