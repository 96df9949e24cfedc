"""LNP extraction over a dataset tree (:func:`extract_tree`) on :mod:`dfig.tree`'s runner."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfig.accel import DEFAULT_PRECISION, PRECISION_CHOICES, drain_done, loader_workers
from dfig.data.images import BAD_FILE_POLICIES, BadImageError
from dfig.data.layout import LNP_EXTS
from dfig.io import STAGE_META, read_stage_meta, save_json, update_stage_meta
from dfig.runlog import RunReport
from dfig.stages.lnp.extract import check_lnp_precision, lnp_batch, prepare, set_precision
from dfig.stages.lnp.files import (
    CHANNEL_ORDER,
    MAX_BATCH_PIXELS,
    SAVE_MODES,
    SUFFIX,
    VALUE_SCALE,
    lnp_to_file,
    read_inputs,
)
from dfig.tree import (
    StageKind,
    base_record,
    begin_run,
    check_output_folder,
    parse_shard,
    plan_tree,
    record_run,
)


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


def _record_of(denoiser: Any) -> dict[str, Any]:
    src = getattr(denoiser, "source", None)
    return dict(src) if isinstance(src, dict) else {"method": type(denoiser).__name__}


def lnp_signature(meta: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resumed run to add to an existing LNP tree (one feature kind per folder):
    save mode, denoiser method, weights SHA-256, the classical denoiser's parameters (its strength
    ``h``) and precision. Arguments: ``meta`` a stage record. Returns the dict compared."""
    den = meta.get("denoiser") or {}
    return {
        "save_mode": meta.get("save_mode"),
        "method": den.get("method"),
        "sha256": den.get("sha256"),
        "classical": den.get("classical"),
        "precision": meta.get("precision"),
    }


#: The LNP stage's outputs, for :func:`dfig.tree.check_output_folder`.
LNP_KIND = StageKind(
    stage="lnp",
    made_by="dfig.stages.lnp",
    what="LNPs",
    suffixes=tuple(LNP_EXTS),
    records=(STAGE_META, ".dfig_shards"),
    signature=lnp_signature,
)


def _stage_meta(inp: Path, rec: dict[str, Any], save_mode: str, precision: str) -> dict[str, Any]:
    return base_record(
        "lnp",
        inp,
        denoiser=rec,
        method=rec.get("method"),
        fallback=rec.get("fallback"),
        classical_h=(rec.get("classical") or {}).get("h"),
        save_mode=save_mode,
        suffix=SUFFIX[save_mode],
        channel_order_into_denoiser=CHANNEL_ORDER[save_mode],
        value_scale=VALUE_SCALE[save_mode],
        resize=None,
        precision=precision,
    )


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


def _finish(
    out: Path, plan: Any, report: RunReport, meta: dict[str, Any], shard: tuple[int, int], seconds: float
) -> None:
    """Fold this run into the tree's record (all shards and reruns) and, sharded, write the shard's own."""
    k, n = shard
    report.extra.update(
        {
            "output_dir": str(out),
            "save_mode": meta["save_mode"],
            "shard": [k, n],
            "seconds": round(seconds, 3),
            "method": meta["method"],
        }
    )
    mine = {"done": report.done, "skipped_existing": report.skipped_existing, "seconds": round(seconds, 3)}
    record_run(out, plan, report, mine)
    if n > 1:
        counts = {
            **mine,
            "failed": len(report.failed),
            "failed_files": [{"path": p, "reason": r} for p, r in report.failed],
            "removed_part_files": report.removed_part_files,
        }
        save_json({**meta, "shard": [k, n], "counts": counts}, out / ".dfig_shards" / f"lnp_{k}_of_{n}.json")


# ~80 lines, of which ~25 docstring (every option documented) and a ~40-line body of named steps.
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
    classical_h: float | None = None,
) -> RunReport:
    """Write the LNP of every image under ``input_dir`` to the mirrored path under ``output_dir``.

    ``denoiser``: an object with ``residual(x)`` (see :func:`dfig.core.denoise.build_denoiser`), or a
    registry name (then ``classical_h`` sets the classical denoiser's strength, see
    :func:`dfig.core.denoise.build_denoiser`; a built denoiser carries its own). Existing outputs are skipped (resume); ``shard=(k, n)`` or ``"k/n"`` takes every
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

        denoiser, built = build_denoiser(denoiser, device=device, classical_h=classical_h)
        record = record or built
    k, n = parse_shard(shard)
    inp, out = Path(input_dir), Path(output_dir)
    rec = record or _record_of(denoiser)
    dev = torch.device(device)
    plan = plan_tree(inp, out, SUFFIX[save_mode], shard=(k, n))  # checks the folders before any deletion
    meta = _stage_meta(inp, rec, save_mode, precision)
    chosen = set_precision(meta, precision, dev, denoiser, read_stage_meta(out), len(plan.existing))
    if check_output_folder(out, LNP_KIND, meta, overwrite, n) is not None:
        plan = plan_tree(inp, out, SUFFIX[save_mode], shard=(k, n))
        chosen = set_precision(meta, precision, dev, denoiser, {}, 0)
    denoiser = prepare(denoiser, device)
    report = RunReport("lnp")
    report.skipped_existing = len(plan.existing)
    todo = plan.todo
    begin_run(out, plan, report, meta, n)

    from dfig.progress import tqdm

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
    _finish(out, plan, report, meta, (k, n), time.perf_counter() - t0)
    return report


__all__ = ["LNP_KIND", "extract_tree", "lnp_signature"]
