"""The feature pipeline recorded in a checkpoint, rebuilt in memory for raw photos.

Raw photo -> segmenter (or its recorded fallback) -> face file round trip -> denoiser -> LNP, exactly
as recorded in the checkpoint's ``"features"`` (see :mod:`dfig.stages.predict`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FEATURE_STAGES: tuple[str, ...] = ("segmentation", "lnp")
#: largest image (width x height) scored by default; raise with ``max_pixels`` / ``--max_pixels``
MAX_PIXELS: int = 4096 * 4096
#: records of raw data, not of a feature stage: the synthetic generator's (``dfig.data.synthetic``)
RAW_DATA_STAGES: tuple[str, ...] = ("synthetic",)


class PipelineMismatchError(RuntimeError):
    """The feature pipeline recorded in a checkpoint cannot be rebuilt exactly here."""


class InputMismatchWarning(UserWarning):
    """The input does not look like what the detector was trained on (kind of file, or size)."""


# ---------------------------------------------------------------------------------------------
# the recorded feature pipeline, rebuilt in memory


def stage_chain(features: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The recorded stages from the raw data outwards, e.g. ``[segmentation meta, lnp meta]``.

    A tree that no dfig stage made (raw photos, ``{}``, or the synthetic generator's record,
    :data:`RAW_DATA_STAGES`) ends the chain. Feature stages made from synthetic data carry a
    ``"synthetic": true`` label too; they are stages all the same (skipping them dropped the
    segmentation of every smoke-profile raw photo). Raises :class:`PipelineMismatchError` for an
    unknown stage.
    """
    chain = []
    meta = dict(features or {})
    while meta.get("stage") and meta["stage"] not in RAW_DATA_STAGES:
        if meta["stage"] not in FEATURE_STAGES:
            raise PipelineMismatchError(
                f"unknown feature stage {meta['stage']!r} in the checkpoint's features "
                f"record; known: {FEATURE_STAGES}"
            )
        chain.append(meta)
        meta = dict(meta.get("input") or {})
    return chain[::-1]


def _rebuild_segmenter(meta: dict[str, Any], device: str) -> Any:
    from dfig.stages.segment import build_segmenter

    rec = dict(meta.get("segmenter") or {})
    method = rec.get("method") or rec.get("name")
    if method == "sam":
        w = rec.get("weights") or {}
        ckpt = w.get("path") if w.get("path") and Path(w["path"]).is_file() else None
        from dfig.fallback import FallbackNotAllowed

        try:
            seg, new = build_segmenter(
                "sam",
                model_type=rec.get("model_type", "vit_h"),
                checkpoint=ckpt,
                prompt=rec.get("prompt", "points"),
                device=device,
                allow_fallback=False,
                verify=w.get("verify", "size"),
            )
        except (FallbackNotAllowed, FileNotFoundError) as e:
            raise PipelineMismatchError(
                f"the detector was trained on faces segmented with SAM {rec.get('model_type')} "
                f"({w.get('file')}), which is not available here; a substitute mask would change the "
                f"features. Put the file in the weights folder (`python -m dfig.weights`). ({e})"
            ) from e
        want, got = w.get("sha256"), (new.get("weights") or {}).get("sha256")
        if want and got and want != got:
            raise PipelineMismatchError(
                f"the detector was trained on faces segmented with SAM weights sha256 "
                f"{want[:16]}..., but {new['weights']['path']} has sha256 {got[:16]}..."
            )
        return seg
    if method in ("prior", "none"):
        seg, _ = build_segmenter(method, allow_fallback=True)  # the recorded (already labelled) fallback
        return seg
    raise PipelineMismatchError(f"cannot rebuild segmenter {method!r} recorded in the checkpoint")


def _rebuild_denoiser(meta: dict[str, Any], device: str) -> Any:
    from dfig.core.denoise import ClassicalDenoiser, load_cycleisp

    rec = dict(meta.get("denoiser") or {})
    method = rec.get("method")
    if method == "classical":
        return ClassicalDenoiser(**dict(rec.get("classical") or {}))
    if method == "cycleisp":
        path = rec.get("path") if rec.get("path") and Path(rec["path"]).is_file() else None
        try:
            den = load_cycleisp(path, device)
        except FileNotFoundError as e:
            raise PipelineMismatchError(
                "the detector was trained on CycleISP LNPs but the CycleISP weights are not available here "
                f"({str(e).splitlines()[0]}); a classical substitute would change the features"
            ) from e
        want, got = rec.get("sha256"), den.source.get("sha256")
        if want and got and want != got:
            raise PipelineMismatchError(
                f"CycleISP weights differ from the training features' (sha256 "
                f"{str(want)[:16]}... recorded, {str(got)[:16]}... found)"
            )
        return den
    raise PipelineMismatchError(f"cannot rebuild denoiser {method!r} recorded in the checkpoint")


def _face_roundtrip(face_rgb: np.ndarray, face_format: str) -> np.ndarray:
    """What reading the saved face file gives back: PNG lossless (identity), JPEG via cv2 at q95."""
    if face_format != "jpg":
        return face_rgb
    import cv2

    from dfig.stages.segment import encode_face

    bgr = cv2.imdecode(np.frombuffer(encode_face(face_rgb, "jpg"), np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@dataclass
class FeaturePipeline:
    """Raw photo -> the object the training reader returned for its feature file.

    That is an RGB PIL image for PNG trees (compat LNPs, faces) and a float32 HxWx3 array for clean
    ``.npy`` LNPs, so the detector's eval transform applies unchanged.
    """

    features: dict[str, Any]
    device: str = "cpu"
    chain: list[dict[str, Any]] = field(init=False)
    segmenter: Any = field(init=False, default=None)
    seg_meta: dict[str, Any] | None = field(init=False, default=None)
    denoiser: Any = field(init=False, default=None)
    lnp_meta: dict[str, Any] | None = field(init=False, default=None)
    no_face: dict[str, str] = field(init=False, default_factory=dict)  # path -> why no face was found

    def __post_init__(self) -> None:
        from dfig.stages.lnp import prepare

        self.chain = stage_chain(self.features)
        for meta in self.chain:
            if meta["stage"] == "segmentation":
                if self.lnp_meta is not None:
                    raise PipelineMismatchError("segmentation after LNP extraction is not a DFIG pipeline")
                self.seg_meta, self.segmenter = meta, _rebuild_segmenter(meta, self.device)
            elif meta["stage"] == "lnp":
                self.lnp_meta = meta
                self.denoiser = prepare(_rebuild_denoiser(meta, self.device), self.device)

    def describe(self) -> str:
        parts = []
        if self.seg_meta:
            rec = self.seg_meta.get("segmenter") or {}
            parts.append(f"segment[{rec.get('name')}, face {self.seg_meta.get('face_format', 'png')}]")
        if self.lnp_meta:
            den = self.lnp_meta.get("denoiser") or {}
            h = (den.get("classical") or {}).get("h") if den.get("method") == "classical" else None
            strength = f" h={h:g}" if h is not None else ""
            parts.append(f"LNP[{den.get('method')}{strength}, {self.lnp_meta.get('save_mode')}]")
        return " -> ".join(parts) or "identity (detector trained on raw images)"

    @property
    def save_mode(self) -> str | None:
        return self.lnp_meta.get("save_mode", "compat") if self.lnp_meta else None

    def from_path(self, path: str | os.PathLike[str]) -> Image.Image | np.ndarray:
        """Features of one raw file, read as the recorded first stage read its inputs."""
        from dfig.data.images import load_rgb

        p = Path(path)
        if self.seg_meta is None and self.lnp_meta is not None:
            from dfig.stages.lnp import (
                read_input,  # compat: cv2 BGR; clean: PIL RGB - as the LNP stage read it
            )

            img = read_input(p, self.save_mode)
            self._check_face(str(p), np.asarray(img), None)
            return self._lnp(img)
        return self.from_rgb(np.asarray(load_rgb(p)), str(p))

    def _check_face(self, key: str | None, rgb: np.ndarray, mask: np.ndarray | None) -> None:
        """Record in :attr:`no_face` (under ``key``) why ``rgb`` holds no face, if :func:`no_face_reason` says so."""
        why = no_face_reason(rgb, mask)
        if key is not None and why:
            self.no_face[key] = why

    def from_rgb(self, rgb: np.ndarray | Image.Image, key: str | None = None) -> Image.Image | np.ndarray:
        """Features of one decoded RGB uint8 image (used for perturbed images); ``key`` (its path) is
        listed in :attr:`no_face` when no face is found in it."""
        rgb = np.ascontiguousarray(np.asarray(rgb.convert("RGB") if isinstance(rgb, Image.Image) else rgb))
        mask = self.segmenter.segment(rgb).mask if self.seg_meta is not None else None
        self._check_face(key, rgb, mask)
        if self.seg_meta is not None:
            from dfig.stages.segment import apply_mask

            face = apply_mask(rgb, mask)
            rgb = _face_roundtrip(face, self.seg_meta.get("face_format", "png"))
        if self.lnp_meta is None:
            return Image.fromarray(rgb)
        return self._lnp(np.ascontiguousarray(rgb[:, :, ::-1]) if self.save_mode == "compat" else rgb)

    def _lnp(self, img: np.ndarray) -> Image.Image | np.ndarray:
        """``img`` in the denoiser's channel order (BGR compat / RGB clean) -> what the reader returns."""
        from dfig.stages.lnp import compat_encode, lnp_batch

        r = lnp_batch(self.denoiser, [img], self.device, self.lnp_meta.get("precision", "fp32"))[0]
        if self.save_mode == "compat":
            u8 = compat_encode(r)  # BGR order, as cv2 wrote it; PIL reads the file back as RGB
            return Image.fromarray(np.ascontiguousarray(u8[:, :, ::-1]))
        return r.astype(np.float16).astype(np.float32)  # the clean .npy is float16


#: below this standard deviation of grey levels the face region holds no detail: no face is there
FACELESS_STD = 2.0


def no_face_reason(rgb: np.ndarray, mask: np.ndarray | None) -> str | None:
    """Why no face can be in a photo, or ``None``: the segmenter's mask is empty, or the face region
    (the mask, else the whole photo) is featureless (grey-level std below :data:`FACELESS_STD`, e.g. a
    solid colour). Not a face detector: a photo with detail but no face is not caught."""
    if mask is not None and not np.asarray(mask).any():
        return "no face found: the segmenter's mask is empty"
    grey = np.asarray(rgb, dtype=np.float32).mean(axis=-1)
    region = grey[np.asarray(mask, dtype=bool)] if mask is not None else grey
    std = float(region.std())
    if std < FACELESS_STD:
        return (
            f"no face found: the face region is featureless (grey-level std {std:.2f}, e.g. a solid colour)"
        )
    return None


def build_feature_pipeline(features: dict[str, Any] | None, device: str = "cpu") -> FeaturePipeline:
    """Rebuild the recorded feature pipeline (see :class:`FeaturePipeline`)."""
    return FeaturePipeline(dict(features or {}), device=device)


# ---------------------------------------------------------------------------------------------
# labels, model, data


__all__ = [
    "FACELESS_STD",
    "FEATURE_STAGES",
    "FeaturePipeline",
    "InputMismatchWarning",
    "MAX_PIXELS",
    "PipelineMismatchError",
    "RAW_DATA_STAGES",
    "build_feature_pipeline",
    "no_face_reason",
    "stage_chain",
]
