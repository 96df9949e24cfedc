"""The registry of official checkpoints: file name, URL, size, hash, and what to download to where.

Nothing here downloads anything and nothing runs at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.registry import lookup

HASHES_FILE = ".dfig_hashes.json"
VERIFY_MODES: tuple[str, ...] = ("none", "size", "hash")
#: sidecar marker of a stand-in file: ``<file name><STANDIN_SUFFIX>``
STANDIN_SUFFIX = ".standin.json"
#: attribute set on the saved state dict of a stand-in file (the marker inside the file)
STANDIN_ATTR = "dfig_standin"
#: how every stage, the manifest and the paper label a stand-in
STANDIN_LABEL = "stand-in (random weights)"


@dataclass(frozen=True)
class Alternate:
    """Another official file accepted for the same weights (e.g. a newer torchvision release)."""

    filename: str
    url: str
    size: int | None = None
    sha256_prefix: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class WeightSpec:
    """One official checkpoint. ``size`` in bytes; ``None`` where not established."""

    name: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    sha256_prefix: str | None
    kind: str  # "sam" | "cycleisp" | "backbone"
    used_by: str
    notes: str = ""
    alternates: tuple[Alternate, ...] = field(default_factory=tuple)

    @property
    def filenames(self) -> tuple[str, ...]:
        """The preferred file name first, then the accepted alternates."""
        return (self.filename, *(a.filename for a in self.alternates))

    def expected(self, filename: str) -> dict[str, Any]:
        """URL, size, full hash and hash prefix expected for ``filename`` (empty dict if unknown name)."""
        if filename == self.filename:
            return {
                "url": self.url,
                "size": self.size,
                "sha256": self.sha256,
                "sha256_prefix": self.sha256_prefix,
            }
        for a in self.alternates:
            if filename == a.filename:
                return {"url": a.url, "size": a.size, "sha256": None, "sha256_prefix": a.sha256_prefix}
        return {}


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_TV_URL = "https://download.pytorch.org/models/"

WEIGHTS: dict[str, WeightSpec] = {
    "sam_vit_h": WeightSpec(
        "sam_vit_h",
        "sam_vit_h_4b8939.pth",
        _SAM_URL + "sam_vit_h_4b8939.pth",
        2564550879,
        None,
        None,
        "sam",
        "dfig.stages.segment (paper setting: SAM ViT-H)",
        "Segment Anything ViT-H, Meta's public download site (segment-anything README). "
        "Whether the hex part of the name is a hash prefix is not established: checked by size.",
    ),
    "sam_vit_l": WeightSpec(
        "sam_vit_l",
        "sam_vit_l_0b3195.pth",
        _SAM_URL + "sam_vit_l_0b3195.pth",
        1249524607,
        None,
        None,
        "sam",
        "dfig.stages.segment (--model_type vit_l)",
        "Segment Anything ViT-L; checked by size.",
    ),
    "sam_vit_b": WeightSpec(
        "sam_vit_b",
        "sam_vit_b_01ec64.pth",
        _SAM_URL + "sam_vit_b_01ec64.pth",
        375042383,
        None,
        None,
        "sam",
        "dfig.stages.segment (--model_type vit_b; ~10-20 s/image on CPU)",
        "Segment Anything ViT-B; checked by size.",
    ),
    "cycleisp_sidd_rgb": WeightSpec(
        "cycleisp_sidd_rgb",
        "sidd_rgb.pth",
        "https://drive.google.com/file/d/1sraG9JKmp0ieLjntRL7Jj2FXBrPr-YVp/view?usp=sharing",
        None,
        None,
        None,
        "cycleisp",
        "dfig.core.denoise / dfig.stages.lnp (LNP extraction)",
        "CycleISP sRGB denoiser trained on SIDD (Google Drive link 'Denoising sRGB images of SIDD' in "
        "the CycleISP GitHub README, github.com/swz30/CycleISP). About 11 MB; 399 keys under "
        "'state_dict'. Size not established: its SHA-256 is recorded on first use.",
    ),
    "resnet50": WeightSpec(
        "resnet50",
        "resnet50-19c8e357.pth",
        _TV_URL + "resnet50-19c8e357.pth",
        102502400,
        None,
        "19c8e357",
        "backbone",
        "dfig.core.models (ResNet50 backbone; the original project's resnet50.pth)",
        "torchvision ImageNet ResNet50 (V1 release); the 8 hex digits start the file's SHA-256 "
        "(torch.hub convention).",
        (
            Alternate(
                "resnet50-0676ba61.pth",
                _TV_URL + "resnet50-0676ba61.pth",
                None,
                "0676ba61",
                "torchvision IMAGENET1K_V1 re-release",
            ),
            Alternate(
                "resnet50-11ad3fa6.pth",
                _TV_URL + "resnet50-11ad3fa6.pth",
                None,
                "11ad3fa6",
                "torchvision IMAGENET1K_V2 (different training recipe)",
            ),
        ),
    ),
    "resnet34": WeightSpec(
        "resnet34",
        "resnet34-b627a593.pth",
        _TV_URL + "resnet34-b627a593.pth",
        None,
        None,
        "b627a593",
        "backbone",
        "dfig.core.models (ResNet-34 backbone, reported in the paper)",
        "torchvision ImageNet ResNet-34; hash prefix in the name (torch.hub convention).",
        (
            Alternate(
                "resnet34-333f7ec4.pth",
                _TV_URL + "resnet34-333f7ec4.pth",
                None,
                "333f7ec4",
                "older torchvision release",
            ),
        ),
    ),
    "mobilenet_v2": WeightSpec(
        "mobilenet_v2",
        "mobilenet_v2-b0353104.pth",
        _TV_URL + "mobilenet_v2-b0353104.pth",
        None,
        None,
        "b0353104",
        "backbone",
        "dfig.core.models (MobileNetV2 backbone, torchvision layout)",
        "torchvision ImageNet MobileNetV2; hash prefix in the name (torch.hub convention).",
        (
            Alternate(
                "mobilenet_v2-7ebf99e0.pth",
                _TV_URL + "mobilenet_v2-7ebf99e0.pth",
                None,
                "7ebf99e0",
                "torchvision IMAGENET1K_V2",
            ),
        ),
    ),
    "mobilenetv2_c5e733a8": WeightSpec(
        "mobilenetv2_c5e733a8",
        "mobilenetv2-c5e733a8.pth",
        "https://github.com/d-li14/mobilenetv2.pytorch/raw/master/pretrained/mobilenetv2-c5e733a8.pth",
        None,
        None,
        None,
        "backbone",
        "dfig.core.models (MobileNetV2 backbone, the original project's file)",
        "ImageNet MobileNetV2 from d-li14/mobilenetv2.pytorch (features.*, top-level conv.*, classifier); "
        "size not established: its SHA-256 is recorded on first use.",
    ),
}


class MissingWeightsError(FileNotFoundError):
    """An official checkpoint is not where it should be; the message says what to download to where."""


class WrongWeightsError(ValueError):
    """A checkpoint file exists but is not the expected one (size or hash differs)."""


class StandinWeightsError(WrongWeightsError):
    """A stand-in where this run accepts only official files, or an official file where it requires stand-ins."""


def spec(name: str) -> WeightSpec:
    """The registry entry ``name``.

    Arguments: ``name`` (a :data:`WEIGHTS` key). Returns: its :class:`WeightSpec`. Raises
    :class:`dfig.registry.UnknownNameError` (a ``KeyError``) listing the known names.
    """
    return lookup(WEIGHTS, name, "weights")


def weights_folder(weights_dir: str | os.PathLike[str] | None) -> Path:
    """``weights_dir`` (``~`` expanded), or :func:`dfig.paths.weights_dir` for ``None``. Returns: a Path."""
    return Path(weights_dir).expanduser() if weights_dir is not None else paths.weights_dir()


def expected_path(name: str, weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the preferred file of ``name`` is looked for."""
    return weights_folder(weights_dir) / spec(name).filename


def download_hint(name: str, weights_dir: str | os.PathLike[str] | None = None) -> str:
    """One paragraph: which file, from which URL, to which folder."""
    s = spec(name)
    folder = weights_folder(weights_dir)
    alts = f" (also accepted: {', '.join(a.filename for a in s.alternates)})" if s.alternates else ""
    size = f", {s.size:,} bytes" if s.size else ""
    return (
        f"Download {s.filename}{size} from {s.url} and put it in {folder}/ "
        f"(or set DFIG_WEIGHTS to the folder holding it, or pass the file path){alts}."
    )


__all__ = [
    "HASHES_FILE",
    "STANDIN_ATTR",
    "STANDIN_LABEL",
    "STANDIN_SUFFIX",
    "VERIFY_MODES",
    "WEIGHTS",
    "Alternate",
    "MissingWeightsError",
    "StandinWeightsError",
    "WeightSpec",
    "WrongWeightsError",
    "download_hint",
    "expected_path",
    "spec",
    "weights_folder",
]
