"""The DFIG detector and its registries: LNP -> FFT amplitude/phase -> fusion -> backbone -> one logit.

Modules:

- :mod:`~dfig.core.models.fusion`: the attention block, :data:`FUSIONS` (modes ``0``, ``1``, ``2``,
  ``"lnp"``, ``"spec"``; :data:`TRAIN_MODES` derives from it) and :data:`SPEC_NORMS`.
- :mod:`~dfig.core.models.backbones`: :data:`BACKBONES`, the one source of :data:`ARCHS`,
  :data:`BACKBONE_NAMES` (display names) and :data:`IMAGENET_WEIGHTS` (official files per backbone).
- :mod:`~dfig.core.models.pretrained`: official ImageNet weights (layouts, strict load, RGB stem).
- :mod:`~dfig.core.models.detector`: :class:`DFIGDetector`, :func:`build_detector`, :func:`load_detector`.

An unknown backbone, mode, spectral scaling or stem initialisation raises
:class:`dfig.registry.UnknownNameError` (a ``KeyError`` and a ``ValueError``) listing the valid names;
a checkpoint that does not fit raises :class:`CheckpointMismatchError` (the one of :mod:`dfig.weights`).
"""

from __future__ import annotations

import importlib
from typing import Any

# Names load on first use (PEP 562), so that ``dfig.core.models.backbones`` - the registry the report
# layer reads display names from - is importable without torch; ``from dfig.core.models import X``
# works as usual.
_EXPORTS: dict[str, str] = {
    "ARCHS": "dfig.core.models.backbones",
    "ARCH_ALIASES": "dfig.core.models.backbones",
    "BACKBONES": "dfig.core.models.backbones",
    "BACKBONE_NAMES": "dfig.core.models.backbones",
    "DLI14_MOBILENETV2": "dfig.core.models.backbones",
    "BackboneSpec": "dfig.core.models.backbones",
    "IMAGENET_WEIGHTS": "dfig.core.models.backbones",
    "arch_key": "dfig.core.models.backbones",
    "build_backbone": "dfig.core.models.backbones",
    "CONFIG_FORMAT": "dfig.core.models.detector",
    "DFIGDetector": "dfig.core.models.detector",
    "STEM_INITS": "dfig.core.models.detector",
    "build_detector": "dfig.core.models.detector",
    "describe_state_dict": "dfig.core.models.detector",
    "lnp_channels_in_stem": "dfig.core.models.detector",
    "load_detector": "dfig.core.models.detector",
    "AttAll": "dfig.core.models.fusion",
    "AttentionBlock": "dfig.core.models.fusion",
    "Concat": "dfig.core.models.fusion",
    "ConcatAttSpec": "dfig.core.models.fusion",
    "FUSIONS": "dfig.core.models.fusion",
    "FixedLogScale": "dfig.core.models.fusion",
    "FreqStandardize": "dfig.core.models.fusion",
    "Fusion": "dfig.core.models.fusion",
    "InstanceStandardize": "dfig.core.models.fusion",
    "LNPOnly": "dfig.core.models.fusion",
    "LNP_CHANNELS": "dfig.core.models.fusion",
    "SPEC_NORMS": "dfig.core.models.fusion",
    "SpecOnly": "dfig.core.models.fusion",
    "TRAIN_MODES": "dfig.core.models.fusion",
    "build_spec_norm": "dfig.core.models.fusion",
    "frequency_coords": "dfig.core.models.fusion",
    "mode_key": "dfig.core.models.fusion",
    "PretrainedMismatchError": "dfig.core.models.pretrained",
    "dli14_mobilenetv2_names": "dfig.core.models.pretrained",
    "init_stem_from_rgb": "dfig.core.models.pretrained",
    "load_backbone_weights": "dfig.core.models.pretrained",
    "load_pretrained_backbone": "dfig.core.models.pretrained",
    "resolve_pretrained": "dfig.core.models.pretrained",
    "UnknownNameError": "dfig.registry",
    "CheckpointMismatchError": "dfig.weights",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ARCHS",
    "ARCH_ALIASES",
    "BACKBONES",
    "BACKBONE_NAMES",
    "CONFIG_FORMAT",
    "DLI14_MOBILENETV2",
    "FUSIONS",
    "IMAGENET_WEIGHTS",
    "LNP_CHANNELS",
    "SPEC_NORMS",
    "STEM_INITS",
    "TRAIN_MODES",
    "AttAll",
    "AttentionBlock",
    "BackboneSpec",
    "CheckpointMismatchError",
    "Concat",
    "ConcatAttSpec",
    "DFIGDetector",
    "FixedLogScale",
    "FreqStandardize",
    "Fusion",
    "InstanceStandardize",
    "LNPOnly",
    "PretrainedMismatchError",
    "SpecOnly",
    "UnknownNameError",
    "arch_key",
    "build_backbone",
    "build_detector",
    "build_spec_norm",
    "frequency_coords",
    "describe_state_dict",
    "dli14_mobilenetv2_names",
    "init_stem_from_rgb",
    "lnp_channels_in_stem",
    "load_backbone_weights",
    "load_detector",
    "load_pretrained_backbone",
    "mode_key",
    "resolve_pretrained",
]
