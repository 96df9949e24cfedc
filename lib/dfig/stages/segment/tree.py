"""Segmentation over a dataset tree (:func:`segment_tree`) on :mod:`dfig.tree`'s runner."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dfig import paths
from dfig.accel import drain_done
from dfig.data.images import BAD_FILE_POLICIES, BadImageError, load_rgb
from dfig.io import STAGE_META
from dfig.runlog import RunReport
from dfig.stages.segment.base import CSV_NAME, FACE_FORMATS, FACE_SUFFIXES, JPEG_QUALITY, STAGE, Segmenter
from dfig.stages.segment.output import default_mask_dir, read_csv, write_csv, write_face_and_mask
from dfig.stages.segment.sam import SamSegmenter, sam_input
from dfig.tree import (
    StageKind,
    base_record,
    begin_run,
    check_output_folder,
    clear_outputs,
    parse_shard,
    plan_tree,
    record_run,
)

_CSV_FLUSH_EVERY = 500


class _SegInputs:
    """Map-style dataset for loader workers: path -> (index, RGB array, SAM input tensor, error)."""

    def __init__(self, paths: list[Path], target_length: int) -> None:
        self.paths, self.target_length = paths, target_length

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, Any, str | None]:
        try:
            rgb = np.asarray(load_rgb(self.paths[i]))
        except BadImageError as e:
            return i, None, None, e.reason
        return i, rgb, sam_input(rgb, self.target_length) if self.target_length else None, None


def _as_is(item: Any) -> Any:
    return item


def segment_stream(items: list[Any], segmenter: Segmenter, workers: int | None = None) -> Iterator[Any]:
    """Decode and segment images in order: yields ``(item, rgb, SegResult)`` or ``(item, None, reason)``.

    Arguments:
        items: paths, or tuples whose first element is the path (yielded back unchanged).
        segmenter: a :class:`SamSegmenter` runs :meth:`~SamSegmenter.segment_batch` on
            ``segmenter.batch_size`` images at a time; any other segmenter one image at a time.
        workers: DataLoader worker processes that decode (and, for SAM, resize) ahead of the model
            (default :func:`dfig.accel.loader_workers`: 0 on CPU); on CUDA the inputs are pinned.

    A file that cannot be read yields its reason (a string) instead of a result.
    """
    import torch

    from dfig.accel import loader_workers

    sam = isinstance(segmenter, SamSegmenter)
    dev = segmenter.device if sam else torch.device("cpu")
    nw = loader_workers(dev) if workers is None else int(workers)
    paths = [Path(it[0] if isinstance(it, tuple) else it) for it in items]
    ds = _SegInputs(paths, segmenter.model.image_encoder.img_size if sam else 0)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        num_workers=nw,
        collate_fn=_as_is,
        pin_memory=dev.type == "cuda",
        prefetch_factor=4 if nw else None,
    )
    size = segmenter.batch_size if sam else 1
    buf: list[tuple[int, np.ndarray | None, Any, str | None]] = []
    for item in loader:
        buf.append(item)
        if sum(b[3] is None for b in buf) >= size:
            yield from _segment_buffer(buf, items, segmenter, sam)
            buf = []
    yield from _segment_buffer(buf, items, segmenter, sam)


def _segment_buffer(
    buf: list[tuple[int, np.ndarray | None, Any, str | None]], items: list[Any], segmenter: Any, sam: bool
) -> Iterator[Any]:
    good = [b for b in buf if b[3] is None]
    if not good:
        results = []
    elif sam:
        results = segmenter.segment_batch([b[1] for b in good], [b[2] for b in good])
    else:
        results = [segmenter.segment(b[1]) for b in good]
    by_index = {b[0]: r for b, r in zip(good, results)}
    for i, rgb, _, reason in buf:
        yield (items[i], None, reason) if reason is not None else (items[i], rgb, by_index[i])


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def faces_signature(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What must match for a resumed run to add to an existing faces folder (one feature kind per
    folder): segmenter, its weights' SHA-256, face format, auto-prompt options. Arguments: ``meta`` a
    stage record. Returns the dict compared."""
    rec = meta.get("segmenter") or {}
    return {
        "segmenter": rec.get("name"),
        "weights sha256": (rec.get("weights") or {}).get("sha256"),
        "face format": meta.get("face_format"),
        "auto options": rec.get("auto_options"),
    }


#: The segmentation stage's outputs, for :func:`dfig.tree.check_output_folder`.
FACES_KIND = StageKind(
    stage=STAGE,
    made_by="dfig.stages.segment",
    what="faces and masks",
    suffixes=FACE_SUFFIXES,
    records=(STAGE_META, CSV_NAME),
    signature=faces_signature,
)


def _check_faces_folder(inp: Path, out: Path, meta: Mapping[str, Any], overwrite: bool, shards: int) -> bool:
    """:func:`dfig.tree.check_output_folder` for faces; on ``overwrite`` the old masks go too (returns True)."""
    old = check_output_folder(out, FACES_KIND, meta, overwrite, shards)
    if old is None:
        return False
    old_masks = paths.resolve(old["mask_dir"]) if old.get("mask_dir") else None  # the record is portable
    if old_masks is not None and not _inside(old_masks, inp) and not _inside(inp, old_masks):
        clear_outputs(old_masks, (".png",))
    return True


def _resume_scan(
    pairs: list[tuple[Path, Path]],
    out: Path,
    masks: Path,
    old_rows: Mapping[str, Any],
    seg_name: str,
    report: RunReport,
) -> tuple[list[tuple[Path, Path]], dict[str, dict[str, Any]]]:
    """Split ``pairs`` into what is left to do and what is done (face AND mask exist: the face is written last).

    Returns ``(todo, rows)``: rows recovered for done images whose CSV row was lost in a crash (area from
    the mask, score unknown); counts ``report.skipped_existing``.
    """
    todo, rows = [], {}
    for src, dest in pairs:
        rel = dest.relative_to(out).as_posix()
        mpath = masks / Path(rel).with_suffix(".png")
        if not (dest.exists() and mpath.exists()):
            todo.append((src, dest))
            continue
        report.skipped_existing += 1
        if rel not in old_rows:
            m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
            area = float((m > 127).mean()) if m is not None else math.nan
            rows[rel] = {"path": rel, "mask_area": area, "score": math.nan, "segmenter": seg_name}
    return todo, rows


def _segment_and_write(
    todo: list[tuple[Path, Path]],
    segmenter: Segmenter,
    out: Path,
    masks: Path,
    face_format: str,
    policy: str,
    report: RunReport,
    rows: dict[str, dict[str, Any]],
    advance: Any,
) -> None:
    """Segment ``todo`` in order; 2 writer threads encode and write faces and masks beside the model.

    Adds a CSV row per image to ``rows`` (flushed to ``segmentation.csv`` every ``_CSV_FLUSH_EVERY``),
    bad files to ``report`` (or raises under ``strict``); ``advance(n)`` moves the progress bar.
    """
    seg_name = report.extra.get("segmenter", segmenter.name)
    with ThreadPoolExecutor(max_workers=2) as writer:
        pending: list[Future[None]] = []
        for (src, dest), rgb, res in segment_stream(todo, segmenter):
            advance(1)
            if isinstance(res, str):
                if policy == "strict":
                    raise BadImageError(src, res)
                report.fail(src, res)
                continue
            mask = np.asarray(res.mask, dtype=bool)
            rel = dest.relative_to(out).as_posix()
            pending.append(
                writer.submit(
                    write_face_and_mask, rgb, mask, dest, masks / Path(rel).with_suffix(".png"), face_format
                )
            )
            rows[rel] = {
                "path": rel,
                "mask_area": float(mask.mean()),
                "score": float(res.score),
                "segmenter": seg_name,
            }
            report.done += 1
            if len(pending) >= 64:
                pending = drain_done(pending)
            if report.done % _CSV_FLUSH_EVERY == 0:
                write_csv(out / CSV_NAME, rows)
        for f in pending:
            f.result()


def _prepare(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    segmenter: Segmenter,
    record: Mapping[str, Any] | None,
    face_format: str,
    mask_dir: str | os.PathLike[str] | None,
    policy: str,
    shard: tuple[int, int],
) -> tuple[Path, Path, Any, dict[str, Any]]:
    """Check the options and folders; returns ``(faces folder, mask folder, plan, stage record)``."""
    if face_format not in FACE_FORMATS:
        raise ValueError(f"face_format must be one of {FACE_FORMATS}, got {face_format!r}")
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"bad-file policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    masks = Path(mask_dir).resolve() if mask_dir is not None else default_mask_dir(out)
    plan = plan_tree(inp, out, "." + face_format, shard=shard, overwrite=True, also_outputs=(masks,))
    if _inside(masks, inp) or _inside(masks, out) or _inside(out, masks):
        raise ValueError(
            f"mask folder {masks} must lie outside the input folder {inp} and the faces "
            f"folder {out} (and not contain it): choose another --mask_dir"
        )
    rec = dict(record) if record is not None else {"name": segmenter.name}
    rec.setdefault("name", segmenter.name)
    meta = base_record(
        STAGE,
        inp,
        segmenter=rec,
        face_format=face_format,
        jpeg_quality=JPEG_QUALITY if face_format == "jpg" else None,
        background=0,
        mask_dir=str(masks),
        csv=CSV_NAME,
    )
    if meta["input"].get("synthetic"):
        meta["synthetic"] = True
    return out, masks, plan, meta


def segment_tree(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    segmenter: Segmenter,
    record: Mapping[str, Any] | None = None,
    face_format: str = "png",
    mask_dir: str | os.PathLike[str] | None = None,
    policy: str = "skip",
    shard: tuple[int, int] | str = (0, 1),
    progress: bool = True,
    overwrite: bool = False,
) -> RunReport:
    """Segment every image under ``input_dir``; write masked faces and masks mirroring its layout.

    Outputs: ``<output_dir>/<rel>.<face_format>`` (background 0; ``png`` lossless by default, ``jpg``
    re-encodes through cv2 at quality 95 as the original), ``<mask_dir>/<rel>.png`` (0/255; default
    :func:`default_mask_dir`), ``<output_dir>/segmentation.csv`` (path, mask_area fraction, score,
    segmenter; merged with earlier rows) and ``<output_dir>/dfig_stage.json``. Every file is written
    atomically; existing faces are skipped (resume). Bad input files are listed in the report
    (``policy="skip"``) or raise :class:`~dfig.data.images.BadImageError` (``"strict"``).
    ``shard=(k, n)`` or ``"k/n"`` takes every n-th file starting at k. A faces folder holds one
    segmenter and format: another is refused unless ``overwrite=True``, which first deletes the faces,
    masks and records this stage made there (never another stage's folder; not with shards). Orphan
    ``.part`` files of a killed run are removed (a shard removes only its own) and counted; the stage
    record merges failures and name collisions across shards and reruns. Returns this run's report.
    """
    from dfig.progress import tqdm

    shard = parse_shard(shard)
    out, masks, plan, meta = _prepare(
        input_dir, output_dir, segmenter, record, face_format, mask_dir, policy, shard
    )
    inp = Path(meta["input_dir"])
    if _check_faces_folder(inp, out, meta, overwrite, shard[1]):  # cleared: plan again
        plan = plan_tree(inp, out, "." + face_format, shard=shard, overwrite=True, also_outputs=(masks,))
    seg_name = meta["segmenter"]["name"]
    report = RunReport(STAGE, extra={"segmenter": seg_name, "shard": f"{shard[0]}/{shard[1]}"})
    csv_path = out / CSV_NAME
    todo, new_rows = _resume_scan(plan.todo, out, masks, read_csv(csv_path), seg_name, report)
    begin_run(out, plan, report, meta, shard[1], mirrors=[(masks, ".png")])

    bar = tqdm(total=len(todo), desc=f"segment [{seg_name}]", disable=not progress, unit="img")
    try:
        _segment_and_write(todo, segmenter, out, masks, face_format, policy, report, new_rows, bar.update)
    finally:
        bar.close()

    if new_rows or not csv_path.exists():
        write_csv(csv_path, new_rows)
    record_run(out, plan, report, {"faces_in_csv": len(read_csv(csv_path)), "this_run": report.to_dict()})
    return report


__all__ = ["FACES_KIND", "faces_signature", "segment_stream", "segment_tree"]
