"""Plan a per-file stage over a dataset tree: mirror paths, resume, shard.

Used by segmentation and LNP extraction. An output that exists is complete (every stage writes
atomically), so a rerun skips it. ``shard=(k, n)`` takes every n-th input starting at k of the sorted
list, so n processes or machines split a dataset without overlap. Shared by both stages: collisions found over
the whole tree (:func:`plan_tree`), failures merged across shards and reruns (:func:`merge_failures`),
``overwrite`` clearing (:func:`holds_outputs`, :func:`clear_outputs`), the one-feature-kind-per-folder
check (:class:`StageKind`, :func:`check_output_folder`) and one stage-record schema
(:func:`base_record`, :func:`begin_run`, :func:`record_run`).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfig import __version__
from dfig.io import (
    STAGE_META,
    name_max,
    read_stage_meta,
    remove_orphan_temps,
    temp_key,
    temp_target,
    update_stage_meta,
)
from dfig.runlog import RunReport
from dfig.treepaths import IMAGE_EXTS, list_images, mirror_path


@dataclass
class TreePlan:
    """``todo``: (input, output) pairs to do; ``existing``: outputs already complete; ``refused``:
    (input, reason) for this shard's inputs that must not run: a name collision (an earlier input, in
    sorted order and any shard, maps to the same output) or a link into an output tree; ``inputs``:
    every input of the tree (all shards); ``mine``: this shard's inputs; ``dests``: input -> output."""

    todo: list[tuple[Path, Path]] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)
    mine: list[Path] = field(default_factory=list)
    dests: dict[Path, Path] = field(default_factory=dict)

    def report_refused(self, report: RunReport) -> None:
        """Count every refused input of this shard as a named failure in ``report`` (on every run)."""
        for src, reason in self.refused:
            report.fail(src, reason)


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 0 <= K < N; ``None`` -> ``(0, 1)``."""
    if text is None:
        return (0, 1)
    if isinstance(text, tuple):
        k, n = text
    else:
        try:
            k, n = (int(x) for x in str(text).split("/"))
        except ValueError as e:
            raise ValueError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from e
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard K/N needs 0 <= K < N, got {k}/{n}")
    return (k, n)


def plan_tree(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    out_suffix: str,
    exts: Iterable[str] = IMAGE_EXTS,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    also_outputs: Iterable[str | os.PathLike[str]] = (),
) -> TreePlan:
    """Pair each input file with its mirrored output (same relative path, ``out_suffix``).

    Arguments: ``shard=(k, n)`` keeps every n-th input from k; ``overwrite`` puts existing outputs in
    ``todo`` too; ``also_outputs`` other folders the stage writes (masks). Returns a :class:`TreePlan`.
    A link in the input that reaches ``output_dir`` or ``also_outputs`` is refused (the stage would
    read its own outputs as new inputs). Two inputs that map to one output (``a.jpg``, ``a.png``)
    are found over the whole tree, before sharding: the first (sorted) keeps the output, the other is a
    collision, in whichever shard it falls. Refuses an output folder inside the input folder (nothing is
    ever written into the input tree).
    """
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if out == inp or inp in out.parents:
        raise ValueError(f"output folder {out} lies inside the input folder {inp}: choose another one")
    k, n = parse_shard(shard)
    outs = [out, *(Path(d).resolve() for d in also_outputs)]
    files = list_images(inp, exts, skip=outs)
    plan = TreePlan(inputs=files, mine=files[k::n])
    owner: dict[Path, Path] = {}
    real_dir = functools.lru_cache(maxsize=None)(os.path.realpath)
    out_strs = [str(o) for o in outs]
    limit = name_max(out)
    for i, f in enumerate(files):
        dest = plan.dests[f] = mirror_path(f, inp, out, out_suffix)
        first = owner.setdefault(dest, f)
        if i % n != k:
            continue
        real = os.path.realpath(f) if f.is_symlink() else os.path.join(real_dir(os.path.dirname(f)), f.name)
        into = next((o for o in out_strs if real == o or real.startswith(o + os.sep)), None)
        if into is not None:
            plan.refused.append(
                (f, f"is a link into the output folder {into}; a stage never reads its own outputs")
            )
        elif len(dest.name.encode()) > limit:
            plan.refused.append(
                (
                    f,
                    f"its output name is longer than the file system allows ({limit} bytes): rename the input",
                )
            )
        elif first != f:
            plan.refused.append(
                (f, f"another input, {first.name}, already maps to {dest.name}; rename one of them")
            )
        elif dest.exists() and not overwrite:
            plan.existing.append(dest)
        else:
            plan.todo.append((f, dest))
    return plan


def merge_failures(
    old: Iterable[Mapping[str, Any]], report: RunReport, plan: TreePlan
) -> list[dict[str, str]]:
    """The failures of a tree stage across shards and reruns, keyed by input file.

    Arguments: ``old`` the ``failed_files`` of the stage record; ``report`` this run; ``plan`` its plan.
    Returns sorted ``{"path", "reason"}`` dicts: an old entry stays while its file is still an input and
    not in this run's shard (another shard's or an earlier run's verdict); this shard's files take this
    run's verdict, so a file that now succeeds leaves the list and a removed file is forgotten.
    """
    everyone, mine = {str(p) for p in plan.inputs}, {str(p) for p in plan.mine}
    merged = {f["path"]: f["reason"] for f in old if f.get("path") in everyone and f["path"] not in mine}
    merged.update(dict(report.failed))
    return [{"path": p, "reason": merged[p]} for p in sorted(merged)]


def remove_orphans(
    plan: TreePlan,
    output_dir: str | os.PathLike[str],
    shards: int,
    mirrors: Iterable[tuple[str | os.PathLike[str], str]] = (),
) -> int:
    """Delete the temporary files a killed run left in the output tree and its mirrors; count them.

    Arguments: ``plan`` this run's plan; ``shards`` N of ``--shard K/N``; ``mirrors`` other trees the
    stage writes as ``(root, suffix)`` (masks: same relative path, ``.png``). Unsharded, every temp file
    named as :mod:`dfig.io` names them goes; a shard removes only those of its own outputs (another shard
    may be writing its own right now). Returns the number removed.
    """
    out = Path(output_dir).resolve()
    roots = [out, *(Path(r).resolve() for r, _ in mirrors)]
    owned = None
    if shards > 1:
        faces = set(plan.existing) | {d for _, d in plan.todo}
        mine = faces | {
            Path(r).resolve() / d.relative_to(out).with_suffix(sfx) for r, sfx in mirrors for d in faces
        }
        owned = {temp_key(d) for d in mine}.__contains__  # a long name's temp file carries a cut name
    return sum(len(remove_orphan_temps(r, owned)) for r in roots if r.is_dir())


def record_run(
    output_dir: str | os.PathLike[str],
    plan: TreePlan,
    report: RunReport,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fold one run (one shard) into the tree's stage record, under the record's lock.

    Arguments: ``plan``/``report`` of this run; ``counts`` stage-specific entries added to the counts.
    Returns the record's new ``counts``: ``inputs`` (all shards), ``outputs`` present, ``failed`` and
    ``failed_files`` merged by :func:`merge_failures`, this run's ``removed_part_files``, and ``counts``.
    The record's ``complete`` says whether every input now has its output or a recorded failure.
    """

    def update(old: dict[str, Any]) -> dict[str, Any]:
        failed = merge_failures((old.get("counts") or {}).get("failed_files") or [], report, plan)
        bad = {f["path"] for f in failed}
        present = {d for d in plan.dests.values() if d.exists()}
        new = {
            "inputs": len(plan.inputs),
            "outputs": len(present),
            "failed": len(failed),
            "failed_files": failed,
            "removed_part_files": report.removed_part_files,
            **(counts or {}),
        }
        complete = all(d in present or str(src) in bad for src, d in plan.dests.items())
        return {**old, "complete": complete, "counts": new}

    return update_stage_meta(output_dir, update)["counts"]


def holds_outputs(root: str | os.PathLike[str], suffixes: Iterable[str]) -> bool:
    """Whether ``root`` holds any (non-hidden) file with one of ``suffixes`` (links not followed)."""
    sfx = tuple(s.lower() for s in suffixes)
    for _dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not f.startswith(".") and Path(f).suffix.lower() in sfx for f in files):
            return True
    return False


def clear_outputs(root: str | os.PathLike[str], suffixes: Iterable[str], names: Iterable[str] = ()) -> int:
    """Delete what a tree stage wrote under ``root`` (for ``overwrite``); other files are kept.

    Arguments: ``suffixes`` of the mirrored outputs (non-hidden files); ``names`` paths relative to
    ``root`` (files or folders) of the stage's own records. Orphan temporary files of :mod:`dfig.io` go
    too, then the folders left empty. Links are removed, never followed. Returns the number of files removed.
    """
    root, sfx = Path(root), tuple(s.lower() for s in suffixes)
    if not root.is_dir():
        return 0
    n = 0
    for name in names:
        p = root / name
        if p.is_dir() and not p.is_symlink():
            n += sum(1 for q in p.rglob("*") if q.is_file())
            shutil.rmtree(p)
        elif p.is_file() or p.is_symlink():
            p.unlink()
            n += 1
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            p = Path(dirpath) / f
            if (not f.startswith(".") and p.suffix.lower() in sfx) or temp_target(p) is not None:
                p.unlink()
                n += 1
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if Path(dirpath) != root and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return n


@dataclass(frozen=True)
class StageKind:
    """What a tree stage writes into its output folder, for :func:`check_output_folder`.

    ``stage``: the record's ``stage``; ``made_by``: the module named in messages; ``what``: its outputs
    in words (``"LNPs"``); ``suffixes``: of its mirrored outputs; ``records``: names (relative to the
    folder) of its own records; ``signature``: stage record -> what must match for a run to add to it.
    """

    stage: str
    made_by: str
    what: str
    suffixes: tuple[str, ...]
    records: tuple[str, ...]
    signature: Callable[[Mapping[str, Any]], dict[str, Any]]


def check_output_folder(
    out: str | os.PathLike[str], kind: StageKind, meta: Mapping[str, Any], overwrite: bool, shards: int
) -> dict[str, Any] | None:
    """Refuse to add to a folder this run does not match (one feature kind per folder); clear it on ``overwrite``.

    Arguments: ``out`` the output folder; ``meta`` this run's stage record; ``shards`` N of ``K/N``.
    Raises ``ValueError`` (one line naming the folder and the fix) for another stage's folder, outputs
    without a record under ``overwrite``, ``overwrite`` with shards, or outputs whose record's
    ``kind.signature`` differs from this run's. Returns the old record when ``overwrite`` cleared the
    folder (the caller clears what it wrote elsewhere), else ``None``.
    """
    out = Path(out)
    old = read_stage_meta(out)
    if old and old.get("stage") != kind.stage:
        raise ValueError(
            f"{out} holds the output of another stage ({out / STAGE_META}: stage {old.get('stage')!r}); "
            f"choose an empty or {kind.stage} output folder."
        )
    if overwrite:
        if shards > 1:
            raise ValueError(
                f"--overwrite deletes every one of the {kind.what} in {out}: it cannot run as one shard of "
                "several (the other shards would lose their work). Run it once without --shard."
            )
        if old:
            clear_outputs(out, kind.suffixes, kind.records)
            return old
        if out.is_dir() and holds_outputs(out, kind.suffixes):
            raise ValueError(
                f"{out} holds {'/'.join(kind.suffixes)} files but no {STAGE_META}: {kind.made_by} did not "
                "make them, so --overwrite does not delete them. Choose an empty --output_dir."
            )
        return None
    if not old or not holds_outputs(out, kind.suffixes):
        return None
    a, b = kind.signature(old), kind.signature(meta)
    if a != b:
        diff = ", ".join(f"{k}: {a[k]!r} there vs {b[k]!r} now" for k in a if a[k] != b[k])
        raise ValueError(
            f"{out} holds {kind.what} made differently ({diff}): resuming would mix methods in one folder, "
            "which holds one feature kind. Choose another --output_dir, or rerun with --overwrite "
            f"(overwrite=True) to delete those {kind.what} and start over."
        )
    return None


def base_record(stage: str, input_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """The entries every tree stage's record starts with: ``stage``, ``dfig_version``, ``input_dir``
    (absolute) and ``input`` (the input tree's own record), then ``fields``. Returns the dict."""
    inp = Path(input_dir)
    return {
        "stage": stage,
        "dfig_version": __version__,
        "input_dir": str(inp.resolve()),
        "input": read_stage_meta(inp),
        **fields,
    }


def begin_run(
    output_dir: str | os.PathLike[str],
    plan: TreePlan,
    report: RunReport,
    meta: Mapping[str, Any],
    shards: int,
    mirrors: Iterable[tuple[str | os.PathLike[str], str]] = (),
) -> None:
    """Start one run of a tree stage, the same way for every stage.

    Arguments: ``plan``/``report`` of this run; ``meta`` its stage record; ``shards`` N of ``K/N``;
    ``mirrors`` other trees it writes (see :func:`remove_orphans`). Counts the refused inputs as
    failures, creates the folder, removes (and counts in ``report.removed_part_files``) the temporary
    files a killed run left, and writes ``meta`` as the record with ``complete`` False, keeping the old
    ``counts`` (other shards' and earlier runs'); :func:`record_run` completes it. Returns nothing.
    """
    plan.report_refused(report)  # e.g. a.jpg and a.png in one folder would both write a.png
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.removed_part_files = remove_orphans(plan, out, shards, mirrors)
    update_stage_meta(out, lambda old: {**meta, "complete": False, "counts": old.get("counts")})


__all__ = [
    "TreePlan",
    "StageKind",
    "parse_shard",
    "plan_tree",
    "merge_failures",
    "remove_orphans",
    "record_run",
    "holds_outputs",
    "clear_outputs",
    "check_output_folder",
    "base_record",
    "begin_run",
]
