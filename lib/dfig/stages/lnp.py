"""LNP extraction over an image tree: the denoiser's residual at full resolution (no resize).

The LNP of an image ``x`` (values in [0, 1]) is ``r = x - denoiser(x)`` (for CycleISP
``-tail(body(head(x)))``, see :mod:`dfig.core.denoise`). Two save modes:

``compat`` (``<stem>.png``) reproduces the original DFIG script byte for byte: the image is read with
OpenCV, so the RGB denoiser receives **BGR**; the residual is clamped to [0, 1], converted to uint8 as
``skimage.img_as_ubyte`` does (``rint(255 r)``), multiplied by 255 **in uint8** (wraparound: a value
``v`` becomes ``(256 - v) % 256``, so 0 stays 0 and 1..255 become 255..1) and written with
``cv2.imwrite``/``imencode`` as PNG. Because both reading and writing use OpenCV's BGR order, the
channels on disk keep their colours. Negative residuals are lost (clamped to 0). Read back with
:func:`read_lnp` as RGB ``uint8 / 255`` in [0, 1] - the values the original classifier saw.

``clean`` (``<stem>.npy``) keeps the signed residual: images read as RGB (:func:`dfig.data.load_rgb`,
any mode, EXIF orientation), ``r`` stored as float16, H x W x 3, **RGB** order, in image units
(a pixel value of 1.0 = full scale; typical |r| < 0.1). float16 keeps ~3 significant digits, far
below the 8-bit quantisation step (1/255) of the compat mode. :func:`read_lnp` returns it as float32.

:func:`extract_tree` mirrors ``{split}/{class}`` (or any tree / a flat folder), skips outputs that
exist (resumable: every file is written atomically, so an existing output is complete), splits work
with ``shard=(k, n)``, reports bad inputs by name, batches same-size images, and writes
``dfig_stage.json`` with the method, weights or fallback record, save mode, counts and the input
tree's own stage meta. CLI: ``python -m dfig.lnp --input_dir MASKED --output_dir LNP``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig import __version__
from dfig.accel import (
    DEFAULT_PRECISION,
    PRECISION_CHOICES,
    PRECISIONS,
    autocast,
    drain_done,
    loader_workers,
    stack_pinned,
)
from dfig.data.images import BAD_FILE_POLICIES, BadImageError, link_problem, load_rgb
from dfig.data.layout import LNP_EXTS
from dfig.io import (
    STAGE_META,
    atomic_write_bytes,
    read_stage_meta,
    save_json,
    update_stage_meta,
)
from dfig.runlog import RunReport
from dfig.tree import clear_outputs, holds_outputs, parse_shard, plan_tree, record_run, remove_orphans

SAVE_MODES: tuple[str, ...] = ("compat", "clean")
SUFFIX: dict[str, str] = {"compat": ".png", "clean": ".npy"}
CHANNEL_ORDER: dict[str, str] = {"compat": "BGR", "clean": "RGB"}
MAX_BATCH_PIXELS = 16 * 256 * 256
VALUE_SCALE: dict[str, str] = {
    "compat": "PNG uint8 = (256 - rint(255*clamp(r,0,1))) % 256 (original DFIG arithmetic); "
    "read_lnp gives RGB uint8/255",
    "clean": "float16 .npy, HxWx3 RGB, signed residual r = x - denoised in image units ([0,1] scale)",
}


# ---------------------------------------------------------------------------------------------
# encoding / decoding one residual


def compat_encode(residual: np.ndarray) -> np.ndarray:
    """The original script's arithmetic: ``clamp(r,0,1)`` -> ``img_as_ubyte`` -> ``* 255`` in uint8.

    ``img_as_ubyte`` on float input computes ``rint(r * 255)`` in float32, clips and casts to uint8;
    the following ``* 255`` stays uint8 and wraps modulo 256. Returns an HxWx3 uint8 array.
    """
    r = np.clip(np.asarray(residual, dtype=np.float32), 0.0, 1.0)
    u8 = np.clip(np.rint(np.multiply(r, 255, dtype=np.float32)), 0, 255).astype(np.uint8)
    return u8 * np.uint8(255)  # uint8 wraparound, as in the original `denoised_img * 255`


def compat_png_bytes(residual: np.ndarray) -> bytes:
    """PNG bytes of :func:`compat_encode` as ``cv2.imwrite`` writes them (default parameters)."""
    import cv2

    ok, buf = cv2.imencode(".png", compat_encode(residual))
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode the LNP as PNG")
    return buf.tobytes()


def clean_npy_bytes(residual: np.ndarray) -> bytes:
    """``.npy`` bytes of the signed residual as float16 (HxWx3)."""
    bio = io.BytesIO()
    np.save(bio, np.asarray(residual, dtype=np.float16), allow_pickle=False)
    return bio.getvalue()


def lnp_to_file(residual: np.ndarray, dest: str | os.PathLike[str], save_mode: str = "compat") -> Path:
    """Write one residual (HxWx3 float, channel order as computed) atomically in ``save_mode``."""
    if save_mode not in SAVE_MODES:
        raise ValueError(f"save_mode must be one of {SAVE_MODES}, got {save_mode!r}")
    data = compat_png_bytes(residual) if save_mode == "compat" else clean_npy_bytes(residual)
    return atomic_write_bytes(dest, data)


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


# ---------------------------------------------------------------------------------------------
# reading inputs


def read_input(path: Path, save_mode: str) -> np.ndarray:
    """HxWx3 uint8 in the channel order the denoiser gets: BGR via cv2 (compat), RGB via PIL (clean).

    Every mode first decodes the whole file with :func:`dfig.data.load_rgb`, so that a truncated, empty
    or broken file is rejected exactly as in the clean mode and segmentation (``cv2.imread`` alone
    fills the missing part of a truncated JPEG with grey). Compat then takes the pixels from
    ``cv2.imread`` (the original script's decoder), or PIL's where OpenCV cannot read the format.
    Raises :class:`BadImageError` naming the file when it cannot be decoded.
    """
    rgb = np.asarray(load_rgb(path))
    if save_mode == "compat":
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return img if img is not None else np.ascontiguousarray(rgb[:, :, ::-1])
    return rgb


class _Inputs:
    """Map-style dataset for loader workers: index -> (index, image or None, reason or None)."""

    def __init__(self, items: list[tuple[Path, Path]], save_mode: str) -> None:
        self.items, self.save_mode = items, save_mode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, read_input(self.items[i][0], self.save_mode), None
        except BadImageError as e:
            return i, None, e.reason


def _as_is(item: Any) -> Any:
    return item


def read_inputs(
    items: list[tuple[Path, Path]], save_mode: str, workers: int = 0
) -> Iterator[tuple[Path, Path, np.ndarray | str]]:
    """Decode inputs in order, ``workers`` processes ahead of the caller (0: in this process).

    Yields ``(src, dest, image)`` (HxWx3 uint8, see :func:`read_input`) or ``(src, dest, reason)``
    for a file that cannot be read.
    """
    loader = torch.utils.data.DataLoader(
        _Inputs(items, save_mode),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=4 if workers else None,
    )
    for i, img, reason in loader:
        yield items[i][0], items[i][1], img if reason is None else reason


def _batches(
    items: list[tuple[Path, Path]],
    save_mode: str,
    batch_size: int,
    report: RunReport,
    policy: str,
    on_fail: Any = None,
    max_pixels: int | None = None,
    workers: int = 0,
) -> Iterator[list[tuple[Path, Path, np.ndarray]]]:
    """Read inputs in order; yield lists of same-size images (up to ``batch_size`` and ``max_pixels``)."""
    buckets: dict[tuple[int, int], list[tuple[Path, Path, np.ndarray]]] = {}
    for src, dest, img in read_inputs(items, save_mode, workers):
        if isinstance(img, str):
            if policy == "strict":
                raise BadImageError(src, img)
            report.fail(src, img)
            if on_fail is not None:
                on_fail(1)
            continue
        key = img.shape[:2]
        buckets.setdefault(key, []).append((src, dest, img))
        cap = batch_size if not max_pixels else max(1, min(batch_size, max_pixels // (key[0] * key[1])))
        if len(buckets[key]) >= cap:
            yield buckets.pop(key)
    yield from (b for b in buckets.values() if b)


# ---------------------------------------------------------------------------------------------
# the stage

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_cpu_allocator(enabled: bool = True) -> bool:
    """Let glibc keep freed large blocks instead of returning them to the OS (Linux only).

    CycleISP allocates dozens of full-resolution 64-channel tensors per image; by default each is a
    fresh ``mmap`` whose pages the kernel must fault in and zero (measured here: ~1.7 M page faults and
    ~1.5 s of system time per 256x256 image, ~35% of the wall time). With a 1 GiB mmap threshold and no
    trimming the memory is reused. The cost: the process keeps its peak heap until it exits.
    ``enabled=False`` restores glibc's defaults. Returns whether the setting was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_thr, trim_thr = ((1 << 30), (1 << 31) - 1) if enabled else (128 * 1024, 128 * 1024)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_thr)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_thr))


def prepare(denoiser: Any, device: str | torch.device = "cpu", tune_allocator: bool = True) -> Any:
    """Put a torch denoiser on ``device`` in eval mode, channels_last, fused attention blocks (fast path).

    On CPU also :func:`tune_cpu_allocator` (process-wide) unless ``tune_allocator=False``.
    """
    if isinstance(denoiser, torch.nn.Module):
        if torch.device(device).type == "cpu" and tune_allocator:
            tune_cpu_allocator(True)
        dev = torch.device(device)
        denoiser = denoiser.eval().to(dev)
        if dev.type in ("cpu", "cuda"):
            denoiser = denoiser.to(memory_format=torch.channels_last)
        if hasattr(denoiser, "set_fused"):
            denoiser.set_fused(True)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
    return denoiser


def lnp_batch(
    denoiser: Any,
    images: list[np.ndarray] | np.ndarray,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> np.ndarray:
    """Residuals of same-size HxWx3 uint8 images (channel order as given) -> float32 N x H x W x 3.

    On CUDA the uint8 batch is stacked in pinned memory and copied with ``non_blocking``; the
    conversion to float happens on the device. ``precision``: fp32, bf16 or fp16 (autocast).
    """
    dev = torch.device(device)
    u8 = stack_pinned(list(images), pin=dev.type == "cuda")
    x = u8.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if isinstance(denoiser, torch.nn.Module):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(dev, precision):
        r = denoiser.residual(x)
    return r.float().permute(0, 2, 3, 1).cpu().numpy()


#: The LNP fidelity check: reduced precision is kept only when, against fp32 on the same batch, the
#: residuals correlate at least this much ...
LNP_MIN_CORR = 0.999
#: ... and at least this share of compat PNG values (uint8, after the original's arithmetic) is identical.
LNP_MIN_PNG_IDENTICAL = 0.99


def lnp_agreement(ref: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Agreement of residuals ``test`` with ``ref`` (N x H x W x 3): correlation, identical compat PNG
    values, max abs difference, and ``passed`` (>= :data:`LNP_MIN_CORR` and :data:`LNP_MIN_PNG_IDENTICAL`)."""
    a, b = np.asarray(ref, dtype=np.float64).ravel(), np.asarray(test, dtype=np.float64).ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float(np.array_equal(a, b))
    same = float(np.mean(compat_encode(ref) == compat_encode(test)))
    return {
        "corr": corr,
        "png_identical": same,
        "max_abs_diff": float(np.abs(a - b).max()) if a.size else 0.0,
        "min_corr": LNP_MIN_CORR,
        "min_png_identical": LNP_MIN_PNG_IDENTICAL,
        "passed": corr >= LNP_MIN_CORR and same >= LNP_MIN_PNG_IDENTICAL,
    }


def check_lnp_precision(
    denoiser: Any,
    images: list[np.ndarray],
    device: str | torch.device = "cpu",
    requested: str = DEFAULT_PRECISION,
    candidate: str | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """LNP's startup fidelity check on one batch: reduced precision vs fp32; choose the precision.

    Arguments:
        denoiser: prepared torch denoiser (:func:`prepare`); images: same-size HxWx3 uint8.
        requested: ``auto`` checks ``candidate`` (default :func:`dfig.accel.reduced_precision`: bf16
            where supported, else fp16) on CUDA, fp32 on CPU unless ``candidate`` is named;
            ``fp32``/``bf16``/``fp16`` are used as asked.

    Returns:
        ``(record, residuals)``: :func:`dfig.accel.choose_precision`'s record (``agreement`` from
        :func:`lnp_agreement`) and the chosen precision's residuals of ``images``.
    """
    from dfig.accel import choose_precision

    if not isinstance(denoiser, torch.nn.Module):  # classical: no autocast to choose
        return (
            {
                "requested": requested,
                "precision": "fp32",
                "checked": False,
                "candidate": None,
                "agreement": None,
                "reason": "not a torch model: fp32",
            },
            lnp_batch(denoiser, images, device),
        )
    return choose_precision(
        lambda prec: lnp_batch(denoiser, images, device, prec), lnp_agreement, device, requested, candidate
    )


def _resolve_precision(
    requested: str, device: torch.device, denoiser: Any, old_meta: dict[str, Any], n_existing: int
) -> str | None:
    """The precision known before any image is seen (None: decided by the check on the first batch).

    ``auto``: a tree being resumed keeps its own precision; CPU or a non-torch denoiser -> fp32.
    """
    if requested != "auto":
        return requested
    if n_existing:
        old = old_meta.get("precision")
        return old if old in PRECISIONS else "fp32"
    if device.type != "cuda" or not isinstance(denoiser, torch.nn.Module):
        return "fp32"
    return None


def _set_precision(
    meta: dict[str, Any],
    requested: str,
    device: torch.device,
    denoiser: Any,
    old_meta: dict[str, Any],
    n_existing: int,
) -> str | None:
    """Put the precision known before any image is seen into ``meta``; return it (None: decided later)."""
    chosen = _resolve_precision(requested, device, denoiser, old_meta, n_existing)
    meta["precision"] = chosen if chosen is not None else "auto (decided on the first batch)"
    reason = (
        "as requested"
        if requested != "auto"
        else "auto: the existing tree's precision"
        if n_existing
        else f"auto on {device.type}"
    )
    meta["precision_check"] = {
        "requested": requested,
        "precision": chosen,
        "checked": False,
        "reason": reason,
    }
    return chosen


def _record_of(denoiser: Any) -> dict[str, Any]:
    src = getattr(denoiser, "source", None)
    return dict(src) if isinstance(src, dict) else {"method": type(denoiser).__name__}


def _signature(meta: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resumed run to add to an existing LNP tree."""
    den = meta.get("denoiser") or {}
    return {
        "save_mode": meta.get("save_mode"),
        "method": den.get("method"),
        "sha256": den.get("sha256"),
        "classical": den.get("classical"),
        "precision": meta.get("precision"),
    }


def _stage_meta(inp: Path, rec: dict[str, Any], save_mode: str, precision: str) -> dict[str, Any]:
    return {
        "stage": "lnp",
        "dfig_version": __version__,
        "denoiser": rec,
        "method": rec.get("method"),
        "fallback": rec.get("fallback"),
        "save_mode": save_mode,
        "suffix": SUFFIX[save_mode],
        "channel_order_into_denoiser": CHANNEL_ORDER[save_mode],
        "value_scale": VALUE_SCALE[save_mode],
        "resize": None,
        "precision": precision,
        "input_dir": str(inp.resolve()),
        "input": read_stage_meta(inp),
    }


def _check_folder(out: Path, meta: dict[str, Any], overwrite: bool, shards: int) -> bool:
    """Refuse to add to a folder this run does not match; with ``overwrite`` clear it (returns True)."""
    old = read_stage_meta(out)
    if old and old.get("stage") != "lnp":
        raise ValueError(
            f"{out} holds the output of another stage ({out / STAGE_META}: "
            f"stage {old.get('stage')!r}); choose an empty or LNP output folder."
        )
    if overwrite:
        if shards > 1:
            raise ValueError(
                f"--overwrite deletes every LNP in {out}: it cannot run as one shard of several "
                "(the other shards would lose their work). Run it once without --shard."
            )
        if old:
            return clear_outputs(out, LNP_EXTS, (STAGE_META, ".dfig_shards")) >= 0
        if out.is_dir() and holds_outputs(out, LNP_EXTS):
            raise ValueError(
                f"{out} holds .png/.npy files but no {STAGE_META}: dfig.stages.lnp did not make them, "
                "so --overwrite does not delete them. Choose an empty --output_dir."
            )
        return False
    if not old or not holds_outputs(out, LNP_EXTS):
        return False
    a, b = _signature(old), _signature(meta)
    if a != b:
        diff = ", ".join(f"{k}: {a[k]!r} there vs {b[k]!r} now" for k in a if a[k] != b[k])
        raise ValueError(
            f"{out} holds LNPs of save_mode {a['save_mode']!r} made differently ({diff}). A stage folder "
            "holds one feature kind: choose another --output_dir, or rerun with --overwrite "
            "(overwrite=True) to delete those LNPs and start over."
        )
    return False


def _check_choices(save_mode: str, policy: str, precision: str, batch_size: int) -> None:
    """``ValueError`` naming the bad option of :func:`extract_tree`."""
    if save_mode not in SAVE_MODES:
        raise ValueError(f"save_mode must be one of {SAVE_MODES}, got {save_mode!r}")
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _denoise_and_write(
    batches: Any,
    denoiser: Any,
    dev: torch.device,
    requested: str,
    chosen: str | None,
    meta: dict[str, Any],
    out: Path,
    report: RunReport,
    advance: Any,
    batch_size: int,
) -> None:
    """Run the denoiser on each batch and hand the files to 2 writer threads (encoding off the model's path).

    ``chosen`` None: the first batch runs :func:`check_lnp_precision`, and its outcome is put into
    ``meta`` and the stage record. Counts ``report.done``; ``advance(n)`` moves the progress bar.
    """
    save_mode = meta["save_mode"]
    with ThreadPoolExecutor(max_workers=2) as writer:
        pending: list[Future[Any]] = []
        for batch in batches:
            imgs = [b[2] for b in batch]
            if chosen is None:  # startup fidelity check on the first batch (CUDA, auto)
                meta["precision_check"], res = check_lnp_precision(denoiser, imgs, dev, requested)
                chosen = meta["precision"] = meta["precision_check"]["precision"]
                checked = {"precision": chosen, "precision_check": meta["precision_check"]}
                update_stage_meta(out, lambda old, c=checked: {**old, **c})
            else:
                res = lnp_batch(denoiser, imgs, dev, chosen)
            pending += [
                writer.submit(lnp_to_file, r, dest, save_mode) for (_s, dest, _i), r in zip(batch, res)
            ]
            report.done += len(batch)
            advance(len(batch))
            if len(pending) >= 4 * batch_size:
                pending = drain_done(pending)
        for f in pending:
            f.result()


def extract_tree(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    denoiser: Any,
    save_mode: str = "compat",
    batch_size: int = 16,
    shard: tuple[int, int] | str = (0, 1),
    policy: str = "skip",
    device: str | torch.device = "cpu",
    progress: bool = True,
    precision: str = DEFAULT_PRECISION,
    record: dict[str, Any] | None = None,
    max_batch_pixels: int | None = MAX_BATCH_PIXELS,
    workers: int | None = None,
    overwrite: bool = False,
) -> RunReport:
    """Write the LNP of every image under ``input_dir`` to the mirrored path under ``output_dir``.

    ``denoiser``: an object with ``residual(x)`` (see :func:`dfig.core.denoise.build_denoiser`), or a
    registry name. Existing outputs are skipped (resume); ``shard=(k, n)`` or ``"k/n"`` takes every
    n-th input; ``policy`` ``skip`` lists bad inputs in the report and goes on, ``strict`` raises.
    ``record`` (default: ``denoiser.source``) is stored in ``dfig_stage.json``. A batch holds at most
    ``max_batch_pixels`` pixels (default 16 images of 256x256; a 1024x1024 image goes alone), which
    bounds the memory (~2 GB on CPU for CycleISP); ``None`` lifts the bound.

    A folder holds one feature kind: a run whose save mode, denoiser, its parameters or precision
    differ from the LNPs already there is refused, unless ``overwrite=True``, which first deletes the
    LNPs and records this stage made (never another stage's folder; not with shards). Orphan ``.part``
    files of a killed run are removed (a shard removes only its own) and counted. The stage record
    merges failures and name collisions across shards and reruns (keyed by input file).
    ``precision``: ``auto`` (default) = fp32 on CPU; on CUDA the first batch runs
    :func:`check_lnp_precision` (bf16, or fp16 without bf16 support, kept only if it passes) and the
    choice and measured agreement go to ``dfig_stage.json`` (``precision``, ``precision_check``); a
    resumed tree keeps its precision. ``workers``: processes decoding inputs ahead of the model
    (default :func:`dfig.accel.loader_workers`: 0 on CPU); PNG/npy encoding and writing run in
    background threads, off the model's critical path.
    Returns the :class:`RunReport` of this run.
    """
    _check_choices(save_mode, policy, precision, batch_size)
    if isinstance(denoiser, str):
        from dfig.core.denoise import build_denoiser

        denoiser, built = build_denoiser(denoiser, device=device)
        record = record or built
    k, n = parse_shard(shard)
    inp, out = Path(input_dir), Path(output_dir)
    rec = record or _record_of(denoiser)
    dev = torch.device(device)
    plan = plan_tree(
        inp, out, SUFFIX[save_mode], shard=(k, n)
    )  # checks the folders before anything is deleted
    meta = _stage_meta(inp, rec, save_mode, precision)
    chosen = _set_precision(meta, precision, dev, denoiser, read_stage_meta(out), len(plan.existing))
    if _check_folder(out, meta, overwrite, n):
        plan = plan_tree(inp, out, SUFFIX[save_mode], shard=(k, n))
        chosen = _set_precision(meta, precision, dev, denoiser, {}, 0)
    denoiser = prepare(denoiser, device)
    report = RunReport("lnp")
    report.skipped_existing = len(plan.existing)
    plan.report_refused(report)  # e.g. a.jpg and a.png in one folder would both write a.png
    todo = plan.todo
    out.mkdir(parents=True, exist_ok=True)
    report.removed_part_files = remove_orphans(plan, out, n)
    update_stage_meta(out, lambda old: {**meta, "complete": False, "counts": old.get("counts")})

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"LNP {save_mode}", unit="img", disable=not progress)
    nw = loader_workers(dev) if workers is None else int(workers)
    try:
        batches = _batches(todo, save_mode, batch_size, report, policy, bar.update, max_batch_pixels, nw)
        _denoise_and_write(
            batches, denoiser, dev, precision, chosen, meta, out, report, bar.update, batch_size
        )
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    report.extra.update(
        {
            "output_dir": str(out),
            "save_mode": save_mode,
            "shard": [k, n],
            "seconds": round(seconds, 3),
            "method": rec.get("method"),
        }
    )
    counts = {
        "done": report.done,
        "skipped_existing": report.skipped_existing,
        "failed": len(report.failed),
        "failed_files": [{"path": p, "reason": r} for p, r in report.failed],
        "seconds": round(seconds, 3),
        "removed_part_files": report.removed_part_files,
    }
    record_run(
        out,
        plan,
        report,
        {"done": report.done, "skipped_existing": report.skipped_existing, "seconds": round(seconds, 3)},
    )  # the tree's record: all shards and reruns
    if n > 1:  # and this shard's own run beside it
        save_json({**meta, "shard": [k, n], "counts": counts}, out / ".dfig_shards" / f"lnp_{k}_of_{n}.json")
    return report


# ---------------------------------------------------------------------------------------------
# CLI (as the original Project_LNP.py was used)


def main(argv: list[str] | None = None) -> int:
    """``python -m dfig.lnp --input_dir MASKED --output_dir LNP [...]``."""
    from dfig.core.denoise import DENOISERS, build_denoiser
    from dfig.fallback import FallbackNotAllowed

    ap = argparse.ArgumentParser(prog="python -m dfig.lnp", description="Extract LNPs over an image tree.")
    ap.add_argument("--input_dir", required=True, help="masked faces (or any image tree)")
    ap.add_argument("--output_dir", required=True, help="where the LNP tree is written (mirrored paths)")
    ap.add_argument(
        "--save_mode",
        choices=SAVE_MODES,
        default="compat",
        help="compat: original PNG arithmetic (BGR in); clean: signed float16 .npy (RGB)",
    )
    ap.add_argument("--denoiser", choices=list(DENOISERS), default="cycleisp")
    ap.add_argument("--checkpoint", default=None, help="sidd_rgb.pth (file or folder; default pretrained/)")
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--shard", default="0/1", help="K/N: process every N-th file starting at K")
    ap.add_argument("--policy", choices=BAD_FILE_POLICIES, default="skip", help="bad input files")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=DEFAULT_PRECISION,
        help="auto: fp32 on CPU; on CUDA bf16/fp16 autocast if the startup fidelity check passes",
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: 0 on CPU, up to 8 on CUDA)"
    )
    ap.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the LNPs and record already in --output_dir first (needed to change the "
        "save mode, denoiser or its parameters there)",
    )
    ap.add_argument("--no_progress", action="store_true")
    args = ap.parse_args(argv)
    from dfig.clierrors import USER_ERRORS, fail, output_error

    try:
        parse_shard(args.shard)
        if not Path(args.input_dir).is_dir():
            raise FileNotFoundError(f"--input_dir {args.input_dir}: no such folder (check the path)")
        denoiser, record = build_denoiser(args.denoiser, checkpoint=args.checkpoint, device=args.device)
    except (FallbackNotAllowed, *USER_ERRORS) as e:
        return fail(e)
    how = record.get("method")
    if record.get("fallback"):
        how += " (FALLBACK instead of CycleISP: " + record["fallback"]["reason"] + ")"
    elif record.get("file"):
        how += f" ({record['file']}, sha256 {str(record.get('sha256'))[:12]})"
    print(
        f"LNP: {args.input_dir} -> {args.output_dir}  save_mode={args.save_mode}  denoiser={how}  "
        f"shard={args.shard}  device={args.device}",
        flush=True,
    )
    try:
        report = extract_tree(
            args.input_dir,
            args.output_dir,
            denoiser,
            save_mode=args.save_mode,
            batch_size=args.batch_size,
            shard=args.shard,
            policy=args.policy,
            device=args.device,
            progress=not args.no_progress,
            precision=args.precision,
            record=record,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except USER_ERRORS as e:
        return fail(output_error(e, args.output_dir, "--output_dir"))
    print(report.summary())
    print(f"stage record: {Path(args.output_dir) / STAGE_META}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "SAVE_MODES",
    "SUFFIX",
    "PRECISIONS",
    "compat_encode",
    "compat_png_bytes",
    "clean_npy_bytes",
    "lnp_to_file",
    "read_lnp",
    "read_input",
    "read_inputs",
    "prepare",
    "LNP_MIN_CORR",
    "LNP_MIN_PNG_IDENTICAL",
    "lnp_agreement",
    "check_lnp_precision",
    "PRECISION_CHOICES",
    "tune_cpu_allocator",
    "MAX_BATCH_PIXELS",
    "lnp_batch",
    "extract_tree",
    "main",
]
