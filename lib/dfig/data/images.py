"""Robust image loading (any mode -> RGB) and the bad-file policy.

Policy (``BAD_FILE_POLICIES``):

- ``skip`` (default): a file that is empty, truncated, not an image, a directory or unreadable is
  left out; it is counted and listed by name in the stage's :class:`~dfig.runlog.RunReport`
  (and so in the run's report JSON). The run goes on.
- ``strict``: the first such file raises :class:`BadImageError` naming it.

Input files are only ever opened for reading.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dfig.runlog import RunReport

BAD_FILE_POLICIES: tuple[str, ...] = ("skip", "strict")

#: the image budget every stage checks from the header, before decoding (issue 22): pixels (50 Mpx, e.g.
#: 8660x5773; a 12000x12000 JPEG took 5.4 GB in segmentation and 9 GB in LNP extraction) and the ratio of
#: the longer to the shorter side (a 1x100000 strip is resized up to millions of pixels). Environment
#: ``DFIG_MAX_PIXELS`` / ``DFIG_MAX_ASPECT`` change them; 0 = no limit.
MAX_PIXELS = 50_000_000
MAX_ASPECT = 10.0


class BadImageError(ValueError):
    """An input file cannot be used as an image; the message names it and says what to do."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"{self.path}: {reason}. Replace or remove this file, or run with the bad-file policy "
            "'skip' to leave it out (it is then counted and listed in the run report)."
        )


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # transparent -> black, as masked background
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def link_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a symbolic link cannot be read as an image, or ``None`` (not a link, or a usable one).

    Arguments: ``path`` the link as it sits in the tree. Returns a reason for a dangling link, a link
    loop (links that never reach a file) or a link to a folder that contains it (a folder loop).
    """
    p = Path(path)
    if not p.is_symlink():
        return None
    try:
        os.stat(p)
    except FileNotFoundError:
        return f"is a dangling link (its target {os.readlink(p)} does not exist)"
    except OSError as e:
        return "is a symbolic link loop (it never reaches a file)" if e.errno == errno.ELOOP else None
    real, above = Path(os.path.realpath(p)), Path(os.path.realpath(p.parent))
    if real == above or real in above.parents:
        return "is a link to a folder that contains it (a loop); it is not followed"
    return None


def image_budget() -> tuple[int, float]:
    """``(max_pixels, max_aspect)``: :data:`MAX_PIXELS` and :data:`MAX_ASPECT`, or the environment's
    ``DFIG_MAX_PIXELS`` / ``DFIG_MAX_ASPECT`` (0 = no limit; a value that is not a number is an error)."""
    out = []
    for var, default in (("DFIG_MAX_PIXELS", MAX_PIXELS), ("DFIG_MAX_ASPECT", MAX_ASPECT)):
        text = os.environ.get(var, "").strip()
        try:
            value = float(text) if text else float(default)
        except ValueError as e:
            raise ValueError(f"{var}={text!r} must be a number (0 = no limit)") from e
        if value < 0:
            raise ValueError(f"{var}={text!r} must be >= 0 (0 = no limit)")
        out.append(value)
    return int(out[0]), out[1]


def check_budget(
    path: str | os.PathLike[str], width: int, height: int, budget: tuple[int, float] | None = None
) -> None:
    """Raise :class:`BadImageError` when a ``width`` x ``height`` image exceeds the budget.

    Arguments: ``path`` the file (named in the error); its size from the header; ``budget``
    ``(max_pixels, max_aspect)``, default :func:`image_budget`. Returns nothing.
    """
    max_pixels, max_aspect = budget or image_budget()
    if max_pixels and width * height > max_pixels:
        raise BadImageError(
            path,
            f"is {width}x{height} = {width * height / 1e6:.1f} Mpx, above the budget of {max_pixels / 1e6:.1f} "
            f"Mpx (memory grows with the pixel count; DFIG_MAX_PIXELS={width * height} admits it)",
        )
    ratio = max(width, height) / max(1, min(width, height))
    if max_aspect and ratio > max_aspect:
        raise BadImageError(
            path,
            f"is {width}x{height}, an aspect ratio of {ratio:.0f}:1 above the budget of {max_aspect:g}:1 "
            f"(resizing its short side would make it huge; DFIG_MAX_ASPECT={ratio:.0f} admits it)",
        )


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open any image as 8-bit RGB: EXIF orientation applied; L, P, RGBA, CMYK, 16-bit all handled.

    Raises :class:`BadImageError` (naming the file) for a directory, an empty, truncated, unreadable
    or non-image file, a dangling link or a link loop (:func:`link_problem`).
    """
    p = Path(path)
    bad_link = link_problem(p)
    if bad_link:
        raise BadImageError(p, bad_link)
    if p.is_dir():
        raise BadImageError(p, "is a directory, not an image file")
    budget = image_budget()
    try:
        if p.stat().st_size == 0:
            raise BadImageError(p, "is an empty (0-byte) file")
        with warnings.catch_warnings():  # our budget is the limit: PIL's bomb warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            check_budget(p, *im.size, budget)  # from the header, before decoding
            im.load()  # forces a full decode: truncated files fail here
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except BadImageError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own limit, above ours unless raised by the user
        raise BadImageError(p, f"is too large to decode ({e})") from e
    except UnidentifiedImageError as e:
        raise BadImageError(p, "is not an image (unrecognised format)") from e
    except PermissionError as e:
        raise BadImageError(p, "cannot be read (permission denied)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImageError(p, f"cannot be decoded ({e})") from e


def check_files(
    paths: Iterable[str | os.PathLike[str]], policy: str = "skip", report: RunReport | None = None
) -> list[Path]:
    """Return the paths that load as images; bad ones are counted in ``report`` or raise (strict)."""
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    good = []
    for p in paths:
        try:
            load_rgb(p)
        except BadImageError as e:
            if policy == "strict":
                raise
            if report is not None:
                report.fail(e.path, e.reason)
            continue
        good.append(Path(p))
    return good


def read_lnp(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an LNP file as float32 H x W x 3, RGB.

    ``.png`` (compat): RGB ``uint8 / 255`` in [0, 1] (the wrapped values the original classifier saw).
    ``.npy`` (clean): the signed residual in image units.
    Raises :class:`BadImageError` naming the file for a bad file or link.
    """
    p = Path(path)
    bad_link = link_problem(p)
    if bad_link:
        raise BadImageError(p, bad_link)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise BadImageError(p, f"is not a valid .npy array file ({e})") from e
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise BadImageError(p, f"is not an H x W x 3 LNP array (shape {arr.shape})")
        return arr.astype(np.float32)
    return np.asarray(load_rgb(p), dtype=np.float32) / 255.0


__all__ = [
    "BAD_FILE_POLICIES",
    "MAX_ASPECT",
    "MAX_PIXELS",
    "BadImageError",
    "check_budget",
    "check_files",
    "image_budget",
    "link_problem",
    "load_rgb",
    "read_lnp",
]
