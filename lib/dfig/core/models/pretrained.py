"""Official ImageNet weights for the backbones: which file, its layout, a strict load, the RGB stem.

Files are read by :func:`dfig.weights.load_checkpoint`. Torchvision layouts load by name; the d-li14
``mobilenetv2-c5e733a8.pth`` layout is renamed by order with every shape checked. Stem and head are
never loaded; every other key must fit, else :class:`PretrainedMismatchError` names the file and keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dfig.core.models.backbones import BACKBONES, DLI14_MOBILENETV2, arch_key
from dfig.weights import WEIGHTS, CheckpointMismatchError, describe, key_list, load_checkpoint, locate


class PretrainedMismatchError(CheckpointMismatchError, RuntimeError):
    """An ImageNet weights file does not fit the backbone (keys or shapes other than stem/head)."""


def resolve_pretrained(pretrained: str | os.PathLike[str], arch: str) -> tuple[Path, str | None]:
    """A weights file from a path, a :mod:`dfig.weights` registry name or ``"imagenet"``.

    Arguments: ``pretrained``, ``arch``. Returns ``(path, registry name or None)``. Raises
    ``FileNotFoundError`` (:class:`dfig.weights.MissingWeightsError`) or ``ValueError``.
    """
    p = Path(pretrained)
    if p.is_file():
        return p, None
    s = str(pretrained)
    spec = BACKBONES[arch_key(arch)]
    if s == "imagenet":
        first_err: Exception | None = None
        for name in spec.weights:
            try:
                return locate(name), name
            except FileNotFoundError as e:  # MissingWeightsError
                first_err = first_err or e
        assert first_err is not None
        raise first_err
    if os.sep not in s and "/" not in s and not s.endswith((".pth", ".pt", ".bin")):
        backbone_names = sorted({n for b in BACKBONES.values() for n in b.weights})
        if s in backbone_names and s in WEIGHTS:
            return locate(s), s
        raise ValueError(
            f"pretrained={s!r} is neither a file nor a backbone weights name "
            f"({', '.join(spec.weights)} for {spec.name}; all: {', '.join(backbone_names)}; "
            "or 'imagenet')"
        )
    raise FileNotFoundError(
        f"pretrained weights file not found: {p} (run `python -m dfig.weights` "
        "to see which files are expected where)"
    )


def _is_nbt(key: str) -> bool:
    return key.endswith("num_batches_tracked")


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
        return DLI14_MOBILENETV2
    return "torchvision"


def load_backbone_weights(
    backbone: nn.Module, arch: str, path: str | os.PathLike[str]
) -> tuple[dict[str, Any], Tensor | None]:
    """Load an ImageNet file into ``backbone`` (stem and head left out); the work of :func:`load_pretrained_backbone`.

    Returns: ``(report, the file's RGB stem weight or None)`` (the stem feeds ``stem_init="rgb"``).
    """
    arch = arch_key(arch)
    spec = BACKBONES[arch]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        sd = load_checkpoint(path)
    except CheckpointMismatchError as e:
        raise PretrainedMismatchError(str(e)) from e
    layout = _detect_layout(sd, arch)
    target = backbone.state_dict()
    if layout != "torchvision":
        # the file's head is the same Linear shape as torchvision's 1000-class head
        ref = spec.imagenet_model().state_dict()
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
            f"left out, but: missing {len(extra_missing)} key(s) [{key_list(extra_missing)}], "
            f"unexpected {len(unexpected)} key(s) [{key_list(unexpected)}]. "
            "Check that the file is the official ImageNet checkpoint of this backbone."
        )
    report = {
        "file": str(path),
        "arch": arch,
        "layout": layout,
        "loaded": len(load),
        "skipped": skipped,
        "file_bytes": path.stat().st_size,
        "provenance": describe(path),  # official | stand-in (random weights)
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
    report, _ = load_backbone_weights(model_backbone, arch, path)
    return report


def dli14_mobilenetv2_names(tv_keys: list[str]) -> list[str]:
    """torchvision MobileNetV2 keys (without ``num_batches_tracked``) -> the d-li14 layout's keys, in order.

    The inverse of the by-order mapping :func:`load_backbone_weights` applies to a d-li14 file (used by
    :mod:`dfig.standin` to write one). Arguments: the torchvision keys. Returns: the d-li14 keys.
    """
    out = []
    for k in tv_keys:
        parts = k.split(".")
        if parts[0] == "classifier":
            out.append(f"classifier.{parts[-1]}")
        elif parts[1] == "0":  # first conv + BN
            out.append(k)
        elif parts[1] == "18":  # final 1x1 conv 320 -> 1280 + BN
            out.append(f"conv.{parts[2]}.{parts[-1]}")
        else:
            block, sub = int(parts[1]), parts[3:]
            if block == 1:  # dw conv.0/1, pw-linear conv.3, bn conv.4
                idx = {("0", "0"): 0, ("0", "1"): 1, ("1",): 3, ("2",): 4}[tuple(sub[:-1])]
            else:  # pw conv.0/1, dw conv.3/4, pw-linear conv.6, bn conv.7
                idx = {("0", "0"): 0, ("0", "1"): 1, ("1", "0"): 3, ("1", "1"): 4, ("2",): 6, ("3",): 7}[
                    tuple(sub[:-1])
                ]
            out.append(f"features.{block}.conv.{idx}.{sub[-1]}")
    return out


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


__all__ = [
    "PretrainedMismatchError",
    "dli14_mobilenetv2_names",
    "init_stem_from_rgb",
    "load_backbone_weights",
    "load_pretrained_backbone",
    "resolve_pretrained",
]
