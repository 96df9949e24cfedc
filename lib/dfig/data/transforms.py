"""Classifier input transforms (CNNDetection recipe) and the perturbations of the robustness study.

:func:`build_transform` maps a PIL RGB image (photo, face crop, ``compat`` LNP PNG) **or** a float32
HxWx3 array (``clean`` LNP, signed values) to a float tensor ``[3, crop, crop]``. Steps, in the order
of CNNDetection's ``data/datasets.py``:

1. shorter side -> ``load_size`` (aspect kept; skipped with ``no_resize``). PIL images: PIL bilinear
   (antialiased, as torchvision on PIL); arrays: ``torch.nn.functional.interpolate`` bilinear,
   antialiased when shrinking.
2. train only: Gaussian blur with probability ``blur_prob`` (sigma uniform in ``blur_sig``), then JPEG
   re-compression with probability ``jpg_prob`` (integer quality uniform in ``jpg_qual``, encoder
   ``jpg_method`` "pil" or "cv2"). JPEG needs an 8-bit image: requesting it for a float array raises
   :class:`ValueError` (a float LNP has no JPEG form).
3. crop ``crop_size``: random position (train) or centre (eval); skipped with ``no_crop``. An input
   smaller than the crop is zero-padded symmetrically (0 = the masked background), with a warning.
4. train only: horizontal flip with probability 0.5 (unless ``no_flip``).
5. to tensor: PIL -> [0, 1]; arrays as they are. Then normalisation (:data:`NORMALIZATIONS`):
   ``"imagenet"`` (mean/std), ``"none"``, or ``"lnp_std"``: divide by the fixed ``opts.lnp_scale``
   (default 0.02, about the standard deviation of a denoiser residual of a [0, 1] photo), meant for
   the signed clean LNP so that its values are O(1). A fixed scale (not a per-image std) keeps the
   relative noise level of each image, which is part of the signal.

Randomness: every draw uses a ``torch.Generator``. With ``seed=None`` (the default, for training) it
is torch's global RNG, which DataLoader seeds per worker (and :func:`dfig.data.dataset.make_loader`
derives from its own seeded generator); seed it with ``torch.manual_seed`` when ``workers=0``. With an
integer ``seed`` the transform owns a private generator (notebooks, tests); ``reseed(s)`` resets it
and the loader's ``worker_init_fn`` calls it with each worker's seed so workers never repeat a stream.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
NORMALIZATIONS: tuple[str, ...] = ("imagenet", "none", "lnp_std")
JPEG_METHODS: tuple[str, ...] = ("pil", "cv2")


@dataclass
class AugmentOptions:
    """Resize/crop/flip/blur/JPEG options (CNNDetection names; ``lnp_scale`` for ``"lnp_std"``)."""

    load_size: int = 256
    crop_size: int = 224
    no_resize: bool = False
    no_crop: bool = False
    no_flip: bool = False
    blur_prob: float = 0.0
    blur_sig: tuple[float, float] = (0.0, 3.0)
    jpg_prob: float = 0.0
    jpg_qual: tuple[int, int] = (30, 100)
    jpg_method: str = "pil"
    lnp_scale: float = 0.02

    def __post_init__(self) -> None:
        self.blur_sig = tuple(float(s) for s in self.blur_sig)  # type: ignore[assignment]
        self.jpg_qual = tuple(int(q) for q in self.jpg_qual)  # type: ignore[assignment]
        if self.jpg_method not in JPEG_METHODS:
            raise ValueError(f"jpg_method must be one of {JPEG_METHODS}, got {self.jpg_method!r}")
        for name in ("blur_prob", "jpg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if len(self.blur_sig) != 2 or not 0.0 <= self.blur_sig[0] <= self.blur_sig[1]:
            raise ValueError(f"blur_sig must be (low, high) with 0 <= low <= high, got {self.blur_sig}")
        if len(self.jpg_qual) != 2 or not 1 <= self.jpg_qual[0] <= self.jpg_qual[1] <= 100:
            raise ValueError(
                f"jpg_qual must be (low, high) with 1 <= low <= high <= 100, got {self.jpg_qual}"
            )
        if self.load_size < 1 or self.crop_size < 1:
            raise ValueError("load_size and crop_size must be positive")
        if self.lnp_scale <= 0:
            raise ValueError(f"lnp_scale must be > 0, got {self.lnp_scale}")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# single operations (shared by the transform and the robustness perturbations)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an HxWxC array (uint8 or float32), reflect border; ``sigma <= 0`` = identity."""
    if sigma <= 0:
        return arr
    return cv2.GaussianBlur(
        arr, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT
    )


def jpeg_compress(img: Image.Image, quality: int, method: str = "pil") -> Image.Image:
    """Encode an RGB PIL image as JPEG at ``quality`` (1-100) in memory and decode it again."""
    quality = int(quality)
    if method == "pil":
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            return im.convert("RGB")
    if method == "cv2":
        bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])
        ok, enc = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a JPEG")
        return Image.fromarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy())
    raise ValueError(f"jpg_method must be one of {JPEG_METHODS}, got {method!r}")


def _short_side_size(w: int, h: int, target: int) -> tuple[int, int]:
    """(new_w, new_h) with the shorter side = ``target``, as torchvision's ``Resize(int)``."""
    if w <= h:
        return target, int(target * h / w)
    return int(target * w / h), target


def _resize_pil(img: Image.Image, target: int) -> Image.Image:
    w, h = img.size
    size = _short_side_size(w, h, target)
    return img if size == (w, h) else img.resize(size, Image.Resampling.BILINEAR)


def _resize_tensor(t: torch.Tensor, target: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    nw, nh = _short_side_size(w, h, target)
    if (nw, nh) == (w, h):
        return t
    shrink = nh < h or nw < w
    return F.interpolate(t[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=shrink)[0]


# ---------------------------------------------------------------------------------------------
# the transform


class ImageTransform:
    """Callable built by :func:`build_transform`; picklable (DataLoader workers)."""

    def __init__(
        self, opts: AugmentOptions, train: bool, normalize: str = "imagenet", seed: int | None = None
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.opts = opts
        self.train = bool(train)
        self.normalize = normalize
        self.seed = seed
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.reseed(seed)
        self._warned_pad = False

    def reseed(self, seed: int) -> None:
        """Reset the private generator (only when the transform was built with a seed)."""
        if self.seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))

    def __repr__(self) -> str:
        return (
            f"ImageTransform(train={self.train}, normalize={self.normalize!r}, seed={self.seed}, "
            f"opts={self.opts})"
        )

    # random draws ------------------------------------------------------------------------------
    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _randint(self, low: int, high_inclusive: int) -> int:
        return int(torch.randint(low, high_inclusive + 1, (), generator=self.generator))

    # steps -------------------------------------------------------------------------------------
    def _augment_pil(self, img: Image.Image) -> Image.Image:
        o = self.opts
        if o.blur_prob > 0 and self._rand() < o.blur_prob:
            lo, hi = o.blur_sig
            sigma = lo + (hi - lo) * self._rand()
            img = Image.fromarray(gaussian_blur(np.asarray(img), sigma))
        if o.jpg_prob > 0 and self._rand() < o.jpg_prob:
            img = jpeg_compress(img, self._randint(*o.jpg_qual), o.jpg_method)
        return img

    def _augment_array(self, arr: np.ndarray) -> np.ndarray:
        o = self.opts
        if o.jpg_prob > 0:
            raise ValueError(
                "JPEG augmentation (jpg_prob > 0) needs 8-bit images, but this input is a float array "
                "(a clean LNP): set jpg_prob=0 for clean LNPs, or train on compat (PNG) LNPs."
            )
        if o.blur_prob > 0 and self._rand() < o.blur_prob:
            lo, hi = o.blur_sig
            arr = gaussian_blur(arr, lo + (hi - lo) * self._rand())
        return arr

    def _crop(self, t: torch.Tensor) -> torch.Tensor:
        c = self.opts.crop_size
        h, w = t.shape[-2:]
        if h < c or w < c:
            if not self._warned_pad:
                warnings.warn(
                    f"input {w}x{h} is smaller than crop_size {c}: zero-padded to {c}x{c} "
                    "(set load_size >= crop_size, or a smaller crop_size)",
                    stacklevel=3,
                )
                self._warned_pad = True
            ph, pw = max(c - h, 0), max(c - w, 0)
            t = F.pad(t, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = t.shape[-2:]
        if self.train:
            top, left = self._randint(0, h - c), self._randint(0, w - c)
        else:
            top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
        return t[:, top : top + c, left : left + c]

    def __call__(self, x: Image.Image | np.ndarray) -> torch.Tensor:
        o = self.opts
        if isinstance(x, Image.Image):
            img = x if x.mode == "RGB" else x.convert("RGB")
            if not o.no_resize:
                img = _resize_pil(img, o.load_size)
            if self.train:
                img = self._augment_pil(img)
            t = torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1) / 255.0
        elif isinstance(x, np.ndarray):
            if x.ndim != 3 or x.shape[2] != 3:
                raise ValueError(f"expected an HxWx3 array, got shape {x.shape}")
            arr = np.asarray(x, dtype=np.float32)
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
            if not o.no_resize:
                t = _resize_tensor(t, o.load_size)
            if self.train and (o.blur_prob > 0 or o.jpg_prob > 0):
                arr = self._augment_array(np.ascontiguousarray(t.permute(1, 2, 0).numpy()))
                t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        else:
            raise TypeError(f"expected a PIL image or an HxWx3 numpy array, got {type(x).__name__}")
        if not o.no_crop:
            t = self._crop(t)
        if self.train and not o.no_flip and self._rand() < 0.5:
            t = t.flip(-1)
        return _normalize(t.contiguous(), self.normalize, o.lnp_scale)


def normalize_tensor(t: torch.Tensor, how: str, lnp_scale: float) -> torch.Tensor:
    """Normalise a ``[..., 3, H, W]`` float tensor in :data:`NORMALIZATIONS` mode ``how`` (see the module)."""
    return _normalize(t, how, lnp_scale)


def _normalize(t: torch.Tensor, how: str, lnp_scale: float) -> torch.Tensor:
    if how == "imagenet":
        mean = torch.tensor(IMAGENET_MEAN, dtype=t.dtype).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=t.dtype).view(3, 1, 1)
        return (t - mean) / std
    if how == "lnp_std":
        return t / lnp_scale
    return t


def build_transform(
    opts: AugmentOptions | None = None,
    train: bool = False,
    normalize: str = "imagenet",
    seed: int | None = None,
) -> Callable[[Image.Image | np.ndarray], torch.Tensor]:
    """The classifier transform (see the module docstring): PIL RGB or float HxWx3 -> ``[3, crop, crop]``."""
    return ImageTransform(opts or AugmentOptions(), train=train, normalize=normalize, seed=seed)


# ---------------------------------------------------------------------------------------------
# robustness perturbations (applied to raw photos before segmentation / LNP extraction)


def _perturb_jpeg(img: Image.Image, quality: float) -> Image.Image:
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must lie in 1..100, got {quality}")
    return jpeg_compress(img, q, "pil")


def _perturb_blur(img: Image.Image, sigma: float) -> Image.Image:
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma}")
    return Image.fromarray(gaussian_blur(np.asarray(img.convert("RGB")), float(sigma)))


def _perturb_downscale(img: Image.Image, factor: float) -> Image.Image:
    """Resample to ``factor`` x the size (bilinear, antialiased) and back to the original size."""
    if not 0 < factor <= 1:
        raise ValueError(f"downscale factor must lie in (0, 1], got {factor}")
    img = img.convert("RGB")
    if factor == 1:
        return img.copy()
    w, h = img.size
    small = img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.BILINEAR)


PERTURBATIONS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "jpeg": _perturb_jpeg,  # level = JPEG quality (1-100)
    "blur": _perturb_blur,  # level = Gaussian sigma in pixels (0 = none)
    "downscale": _perturb_downscale,  # level = scale factor in (0, 1]; resized back to the original size
}


def perturb(img: Image.Image, kind: str, level: float) -> Image.Image:
    """Apply robustness perturbation ``kind`` (a key of :data:`PERTURBATIONS`) at ``level``; RGB out."""
    try:
        fn = PERTURBATIONS[kind]
    except KeyError:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {sorted(PERTURBATIONS)}") from None
    return fn(img, level)


def center_region(img: Any, size: int | None) -> Any:
    """The central ``size x size`` region of a PIL image or HxWxC array (unchanged if smaller or None)."""
    if not size:
        return img
    w, h = (
        img.size if hasattr(img, "size") and not isinstance(img, np.ndarray) else (img.shape[1], img.shape[0])
    )
    if w < size or h < size:
        return img
    left, top = (w - size) // 2, (h - size) // 2
    if isinstance(img, np.ndarray):
        return img[top : top + size, left : left + size]
    return img.crop((left, top, left + size, top + size))


__all__ = [
    "center_region",
    "AugmentOptions",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageTransform",
    "JPEG_METHODS",
    "NORMALIZATIONS",
    "PERTURBATIONS",
    "build_transform",
    "gaussian_blur",
    "jpeg_compress",
    "perturb",
]
