"""An in-memory training set: every image decoded once per run, crops and flips drawn from RAM.

:class:`ImageDataset` decodes (PNG/JPEG/``.npy``) and transforms every image again in every epoch; on
a 2-core CPU that costs as much as the network. :class:`CachedDataset` is a drop-in replacement (same
``(tensor, label, index)`` items, ``samples``, ``labels``, ``report``, ``transform``) that reads each
file once, through the same reader (so the same bad-file policy and the same centre region), and keeps:

- **train** (random crops): the image after the deterministic steps of
  :class:`~dfig.data.transforms.ImageTransform` (RGB conversion, resize to ``load_size`` unless
  ``no_resize``) as a ``uint8`` tensor (photos, compat PNG LNPs) or a ``float16`` tensor (clean LNPs
  stored as float16 .npy: lossless), ``float32`` only when float16 would change a value. Each item
  then draws its crop position and flip with the transform's generator *in the same order and with
  the same calls* as ``ImageTransform`` (``randint`` top, ``randint`` left, ``rand`` flip), so for the
  same generator state it returns exactly the tensor the streaming path returns;
- **eval** (fixed centre crop): the transform's output itself, computed once.

Blur and JPEG augmentation are random per step and need the decoded image: a training transform with
``blur_prob`` or ``jpg_prob`` > 0 cannot be cached (:func:`cache_blocker`), and then the run streams.

:func:`decide_cache` chooses between the two for a run (``cache: auto|on|off``; ``auto`` = on for CPU
training when the estimate fits ``max_cache_mb``) and says why in one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from dfig.data.dataset import Reader, load_sample_image
from dfig.data.images import BAD_FILE_POLICIES, BadImageError
from dfig.data.layout import Sample
from dfig.data.transforms import AugmentOptions, ImageTransform, normalize_tensor
from dfig.progress import tqdm
from dfig.runlog import RunReport

#: values of the training option ``cache``
CACHE_MODES: tuple[str, ...] = ("auto", "on", "off")
#: default limit of the estimated cache size (train + val) in MiB; above it the run streams
DEFAULT_MAX_CACHE_MB = 4096.0


def cache_blocker(opts: AugmentOptions, train: bool) -> str | None:
    """Why a transform with ``opts`` cannot be served from memory, or ``None`` when it can.

    Arguments: ``opts`` the transform's options; ``train`` whether it is the training transform.
    Returns: a short reason (blur/JPEG augmentation needs the decoded image every step) or ``None``.
    """
    if train and (opts.blur_prob > 0 or opts.jpg_prob > 0):
        return "blur/JPEG augmentation (blur_prob or jpg_prob > 0) runs on the decoded image every step"
    return None


def prepare_image(img: Image.Image | np.ndarray, opts: AugmentOptions) -> torch.Tensor:
    """The deterministic first steps of the training transform: ``[3, H, W]`` uint8/float16/float32.

    Arguments: ``img`` a PIL image or a float HxWx3 array (what the reader returns); ``opts`` the
    transform's options (resize to ``load_size`` unless ``no_resize``).
    Returns: uint8 for PIL images; float16 for arrays that float16 holds exactly, else float32.
    """
    from dfig.data.transforms import build_transform

    if isinstance(img, Image.Image):
        img = img if img.mode == "RGB" else img.convert("RGB")
        if not opts.no_resize:
            img = resize_like_transform(img, opts.load_size)
        return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a PIL image or an HxWx3 array, got {getattr(img, 'shape', type(img))}")
    # the array path of the transform without crop/flip/normalisation = its resize
    plain = AugmentOptions(load_size=opts.load_size, crop_size=1, no_resize=opts.no_resize, no_crop=True)
    t = build_transform(plain, train=False, normalize="none")(img)
    half = t.to(torch.float16)
    return half if torch.equal(half.float(), t) else t.contiguous()


def resize_like_transform(img: Image.Image, target: int) -> Image.Image:
    """Shorter side -> ``target`` with PIL bilinear, exactly as :class:`ImageTransform` does."""
    w, h = img.size
    size = (target, int(target * h / w)) if w <= h else (int(target * w / h), target)
    return img if size == (w, h) else img.resize(size, Image.Resampling.BILINEAR)


@dataclass
class CacheDecision:
    """Whether a run serves its images from memory, the size estimate and the one-line reason."""

    use: bool
    estimated_mb: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"use": self.use, "estimated_mb": round(self.estimated_mb, 1), "reason": self.reason}


def estimate_mb(
    samples: Sequence[Sample], reader: Reader, opts: AugmentOptions, eval_opts: AugmentOptions, n_val: int
) -> float:
    """Estimated RAM (MiB) of a cache of ``len(samples) - n_val`` training and ``n_val`` eval images.

    Arguments: ``samples`` all images (the first readable one is decoded to size the rest);
    ``reader`` the dataset's reader; ``opts``/``eval_opts`` the train/eval transforms' options;
    ``n_val`` how many of ``samples`` are eval images. Returns ``0.0`` when none is readable.
    """
    for s in samples[:20]:
        try:
            img = reader(s.path)
        except BadImageError:
            continue
        t = prepare_image(img, opts)
        c = eval_opts.crop_size
        h, w = (t.shape[-2:]) if eval_opts.no_crop else (c, c)
        per_eval = 3 * h * w * 4
        return ((len(samples) - n_val) * t.numel() * t.element_size() + n_val * per_eval) / 2**20
    return 0.0


def decide_cache(
    mode: str,
    device: str | torch.device,
    estimated: Callable[[], float],
    blocker: str | None,
    max_mb: float = DEFAULT_MAX_CACHE_MB,
) -> CacheDecision:
    """Cache or stream: ``off`` never; ``on`` whenever possible; ``auto`` on CPU whenever possible.

    Arguments: ``mode`` one of :data:`CACHE_MODES`; ``device`` the training device; ``estimated`` a
    callable giving the size in MiB (called only when needed); ``blocker`` :func:`cache_blocker`'s
    answer; ``max_mb`` the size limit. Returns a :class:`CacheDecision` whose ``reason`` is one line.
    """
    if mode not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {mode!r}")
    if mode == "off":
        return CacheDecision(False, 0.0, "cache: off (streaming from disk, as asked)")
    if mode == "auto" and torch.device(device).type != "cpu":
        return CacheDecision(False, 0.0, "cache: auto -> off on a GPU (loader workers stream from disk)")
    if blocker:
        return CacheDecision(False, 0.0, f"cache: {mode} -> off: {blocker}; streaming from disk")
    mb = float(estimated())
    if mb > max_mb:
        return CacheDecision(
            False,
            mb,
            f"cache: {mode} -> off: about {mb:.0f} MB would exceed max_cache_mb={max_mb:.0f}; "
            "streaming from disk (raise max_cache_mb to cache)",
        )
    return CacheDecision(True, mb, f"cache: on, images decoded once into about {mb:.0f} MB of RAM")


class CachedDataset(Dataset):
    """Labelled files decoded once into RAM -> ``(tensor, label: float, index)`` like ``ImageDataset``.

    Arguments: ``samples`` from :func:`dfig.data.layout.discover`; ``transform`` an
    :class:`~dfig.data.transforms.ImageTransform` (train: random crop/flip from memory with its
    generator; eval: its output stored); ``reader`` as for ``ImageDataset`` (e.g. with a centre
    region); ``policy`` ``skip`` (bad files counted and named in ``report``) or ``strict`` (raise).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: ImageTransform,
        reader: Reader = load_sample_image,
        policy: str = "skip",
        report: RunReport | None = None,
        progress: bool | None = None,
    ) -> None:
        if policy not in BAD_FILE_POLICIES:
            raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
        if not isinstance(transform, ImageTransform):
            raise TypeError(f"CachedDataset needs an ImageTransform, got {type(transform).__name__}")
        blocker = cache_blocker(transform.opts, transform.train)
        if blocker:
            raise ValueError(f"this transform cannot be cached: {blocker}")
        self.transform, self.reader, self.policy = transform, reader, policy
        self.report = report if report is not None else RunReport("dataset")
        self.samples: list[Sample] = []
        self.images: list[torch.Tensor] = []
        self._warned_pad = False
        show = len(samples) >= 2000 if progress is None else progress
        for s in tqdm(list(samples), desc="caching images", unit="file", disable=not show):
            try:
                img = reader(s.path)
            except BadImageError as e:
                if policy == "strict":
                    raise
                self.report.fail(e.path, e.reason)
                continue
            self.images.append(self._store(img, s))
            self.samples.append(s)
        self.report.done = len(self.samples)

    def _store(self, img: Any, s: Sample) -> torch.Tensor:
        try:
            if self.transform.train:
                return prepare_image(img, self.transform.opts)
            return self.transform(img)
        except Exception as e:
            if hasattr(e, "add_note"):  # Python 3.11+; on 3.10 the error goes up without the note
                e.add_note(f"while caching {s.path}")
            raise

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached tensors."""
        return sum(t.numel() * t.element_size() for t in self.images)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every file left out (same as ``self.report.failed``)."""
        return list(self.report.failed)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, int]:
        i = int(index)
        t = self.images[i]
        if self.transform.train:
            t = self._random_view(t)
        return t, float(self.samples[i].label), i

    def _random_view(self, t: torch.Tensor) -> torch.Tensor:
        """Crop + flip + to float + normalise, drawing as ``ImageTransform`` does (same generator)."""
        o, tf = self.transform.opts, self.transform
        g = tf.generator
        if not o.no_crop:
            t = self._crop(t, o.crop_size, g)
        if not o.no_flip and float(torch.rand((), generator=g)) < 0.5:
            t = t.flip(-1)
        x = t.to(torch.float32) / 255.0 if t.dtype == torch.uint8 else t.to(torch.float32)
        return normalize_tensor(x.contiguous(), tf.normalize, o.lnp_scale)

    def _crop(self, t: torch.Tensor, c: int, g: torch.Generator | None) -> torch.Tensor:
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
        top = int(torch.randint(0, h - c + 1, (), generator=g))
        left = int(torch.randint(0, w - c + 1, (), generator=g))
        return t[:, top : top + c, left : left + c]


__all__ = [
    "CACHE_MODES",
    "CacheDecision",
    "CachedDataset",
    "DEFAULT_MAX_CACHE_MB",
    "cache_blocker",
    "decide_cache",
    "estimate_mb",
    "prepare_image",
    "resize_like_transform",
]
