"""Check what arrived: files per split and class, image sizes and formats, one file in two folders.

``python -m dfig.data check DIR [--expect faces140k]`` prints the table of :func:`format_table`;
``run_all.py`` calls :func:`check_for_run` before the first notebook (binding in a profile that sets
``expect_data``: the paper profile). Nothing is written into the data tree.

The record (:func:`check_tree`, the manifest's ``data_check``) holds ``counts`` per canonical split
(``train``/``val``/``test``) and class (``real``/``fake``), the folder each split was read from, the
sampled image kinds, the duplicates found, and the ``problems``; see :func:`check_tree`.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.data.catalog import Collection, collection
from dfig.data.layout import (
    CLASS_DIRS,
    CLASS_NAMES,
    LAYOUT_TEXT,
    SPLIT_ALIASES,
    SPLITS,
    find_data_root,
    list_images,
    split_dir,
)

#: images opened (format, size, full decode) and content-hashed per split and class, by default
SAMPLE_PER_FOLDER = 200
#: the record's file under ``reports/<profile>/metrics/`` (the manifest copies it as ``data_check``)
RECORD_NAME = "data_check.json"
CLASSES = ("real", "fake")


@dataclass
class TreeFiles:
    """The files of a dataset tree: ``files[(split, cls)]``, the folder read for each split."""

    root: Path
    folders: dict[str, str] = field(default_factory=dict)
    files: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scan_tree(root: str | os.PathLike[str]) -> TreeFiles:
    """List every image of each split and class; a missing split or class folder is a problem.

    Arguments: ``root`` the tree (``{train,val|valid,test}/{real,fake}``). Returns :class:`TreeFiles`;
    folders beside the splits, and files beside the class folders, are noted (they are not read).
    """
    tree = TreeFiles(Path(root))
    if not tree.root.is_dir():
        tree.problems.append(f"{tree.root}: no such folder")
        return tree
    for split in SPLITS:
        try:
            d = split_dir(tree.root, split)
        except ValueError as e:
            tree.problems.append(str(e))
            continue
        if not d.is_dir():
            tree.problems.append(
                f"the {split} split is missing (no {' or '.join(SPLIT_ALIASES[split])}/ folder)"
            )
            continue
        tree.folders[split] = d.name
        for label, cls in CLASS_NAMES.items():
            dirs = [d / n for n, lab in CLASS_DIRS.items() if lab == label and (d / n).is_dir()]
            if not dirs:
                tree.problems.append(
                    f"{d.name}/: the {cls} class folder is missing ({cls}/ or {label}_{cls}/)"
                )
            tree.files[(split, cls)] = [p for c in dirs for p in list_images(c)]
            if dirs and not tree.files[(split, cls)]:
                tree.problems.append(f"{d.name}/{dirs[0].name}: no images")
        stray = [e.name for e in os.scandir(d) if not e.name.startswith(".") and e.name not in CLASS_DIRS]
        if stray:
            tree.notes.append(
                f"{d.name}/: {len(stray)} entries beside the class folders not read, e.g. {stray[0]}"
            )
    known = {n for names in SPLIT_ALIASES.values() for n in names}
    other = sorted(e.name for e in os.scandir(tree.root) if e.is_dir() and e.name not in known)
    other = [n for n in other if not n.startswith(".")]
    if other:
        tree.notes.append(f"folders beside the splits not read: {', '.join(other[:5])}")
    return tree


def image_kind(path: Path) -> str:
    """``"JPEG 256x256"`` for a readable image (decoded in full), ``"unreadable"`` otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return f"{im.format} {im.size[0]}x{im.size[1]}"
    except (OSError, ValueError, Image.DecompressionBombError):
        return "unreadable"


def pick_samples(tree: TreeFiles, per_folder: int, seed: int = 0) -> dict[tuple[str, str], list[Path]]:
    """Up to ``per_folder`` files of each split and class, drawn with a fixed seed (same draw every run)."""
    rng = random.Random(seed)
    out = {}
    for key, files in tree.files.items():
        out[key] = sorted(rng.sample(files, min(per_folder, len(files)))) if per_folder > 0 else []
    return out


def file_digest(path: Path) -> str:
    """BLAKE2b of the file's bytes (a link is read through)."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_duplicates(
    tree: TreeFiles, seeds: Iterable[Path] | None = None, examples: int = 5
) -> dict[str, Any]:
    """Files with the same content in two folders (two splits, or both classes of one split).

    Only files of equal byte size can be equal, so files are grouped by size (one ``stat`` each) and
    only groups that span two folders are hashed: all of them (``seeds=None``, exact), or only the
    groups holding a seed (a sample: a copied split is found, a single stray copy may not be).
    Arguments: ``tree``; ``seeds`` the sampled files or None; ``examples`` how many groups to name.
    Returns ``{"mode", "files_hashed", "found", "examples"}``: ``found`` distinct contents present in
    more than one folder; ``examples`` lists of paths relative to the root.
    """
    by_size: dict[int, list[tuple[tuple[str, str], Path]]] = {}
    for key, files in tree.files.items():
        for p in files:
            try:
                by_size.setdefault(p.stat().st_size, []).append((key, p))
            except OSError:
                continue  # a broken link: the sample's decode reports unreadable files
    wanted = None if seeds is None else set(seeds)
    by_content: dict[str, list[tuple[tuple[str, str], Path]]] = {}
    hashed = 0
    for group in by_size.values():
        if len({k for k, _ in group}) < 2 or (wanted is not None and not any(p in wanted for _, p in group)):
            continue
        for key, p in group:
            try:
                by_content.setdefault(file_digest(p), []).append((key, p))
                hashed += 1
            except OSError:
                continue
    dups = [g for g in by_content.values() if len({k for k, _ in g}) > 1]
    rel = [[_relative(p, tree.root) for _, p in g] for g in sorted(dups, key=lambda g: str(g[0][1]))]
    return {"mode": "all" if seeds is None else "sample", "files_hashed": hashed, "found": len(dups),
            "examples": rel[:examples]}  # fmt: skip


def _relative(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def count_problems(counts: Mapping[str, Mapping[str, int]], coll: Collection, accept_subset: bool) -> tuple[list[str], bool]:  # fmt: skip
    """Compare the counts with the collection's. Returns ``(problems, subset_accepted)``.

    A subset is accepted (``accept_subset``) when no folder holds more files than the collection's
    and none is empty; any other difference is a problem naming up to six folders.
    """
    diffs = [(s, c, counts.get(s, {}).get(c, 0), n) for s, per in coll.counts.items() for c, n in per.items()]
    diffs = [d for d in diffs if d[2] != d[3]]
    if not diffs:
        return [], False
    if accept_subset and all(0 < seen <= n for _, _, seen, n in diffs):
        return [], True
    listed = ", ".join(f"{s}/{c} {seen:,} (expected {n:,})" for s, c, seen, n in diffs[:6])
    more = f" and {len(diffs) - 6} more" if len(diffs) > 6 else ""
    return [f"counts differ from {coll.name}: {listed}{more}"], False


def kind_problems(kinds: Mapping[str, Mapping[str, int]], coll: Collection | None) -> list[str]:
    """Sampled files that are unreadable, or (with a collection) not of its size and format."""
    want = f"{coll.format} {coll.size[0]}x{coll.size[1]}" if coll else None
    out = []
    for folder, seen in kinds.items():
        bad = {k: n for k, n in seen.items() if k == "unreadable" or (want and k != want)}
        if bad:
            total = sum(seen.values())
            what = ", ".join(f"{k} ({n})" for k, n in bad.items())
            out.append(
                f"{folder}: {sum(bad.values())} of {total} sampled files are {what}"
                + (f", not {want}" if want else "")
            )
    return out


def check_tree(
    root: str | os.PathLike[str],
    expect: str | None = None,
    per_folder: int = SAMPLE_PER_FOLDER,
    hash_all: bool = False,
    accept_subset: bool = False,
) -> dict[str, Any]:
    """Check a dataset tree; returns the record (the manifest's ``data_check``).

    Arguments: ``root`` the tree; ``expect`` a collection name (:data:`dfig.data.catalog.COLLECTIONS`)
    whose counts, size and format the tree must match; ``per_folder`` files opened and hashed per
    split and class; ``hash_all`` hash every file whose size recurs in another folder (exact);
    ``accept_subset`` fewer files than the collection's is not a problem (recorded).
    Returns ``{"root", "expect", "folders", "counts", "total", "expected_counts", "images",
    "duplicates", "notes", "problems", "accepted_subset", "status", "seconds", "checked_at"}``;
    ``status`` is ``ok``, ``subset`` (accepted) or ``problems``.
    """
    t0 = time.perf_counter()
    coll = collection(expect) if expect else None
    tree = scan_tree(root)
    samples = pick_samples(tree, per_folder)
    kinds = {
        f"{tree.folders[s]}/{c}": dict(Counter(map(image_kind, ps))) for (s, c), ps in samples.items() if ps
    }
    dups = find_duplicates(tree, None if hash_all else [p for ps in samples.values() for p in ps])
    counts = {s: {c: len(tree.files.get((s, c), [])) for c in CLASSES} for s in SPLITS}
    problems = list(tree.problems)
    subset = False
    if coll:
        more, subset = count_problems(counts, coll, accept_subset)
        problems += more
    problems += kind_problems(kinds, coll)
    if dups["found"]:
        ex = "; ".join(" = ".join(g[:2]) for g in dups["examples"][:2])
        problems.append(f"{dups['found']} file(s) present in two folders (e.g. {ex})")
    return {
        "root": paths.portable(Path(root).resolve()),
        "expect": coll.name if coll else None,
        "folders": tree.folders,
        "counts": counts,
        "total": sum(sum(v.values()) for v in counts.values()),
        "expected_counts": coll.counts if coll else None,
        "images": {"sampled_per_folder": per_folder, "kinds": kinds},
        "duplicates": dups,
        "notes": tree.notes,
        "problems": problems,
        "layout_problems": list(tree.problems),
        "accepted_subset": subset,
        "status": "problems" if problems else ("subset" if subset else "ok"),
        "seconds": round(time.perf_counter() - t0, 2),
        "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def format_table(rec: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> str:
    """The record as one screen: a row per split (folder, real, fake, total, expected, image kinds).

    Arguments: ``rec`` a :func:`check_tree` record; ``root`` the tree as the user knows it (default:
    the record's portable path). Returns the text.
    """
    exp = rec.get("expected_counts") or {}
    lines = [
        f"data check: {root or rec['root']}" + (f" (expect {rec['expect']})" if rec.get("expect") else "")
    ]
    lines.append(
        f"{'split':6} {'folder':7} {'real':>8} {'fake':>8} {'total':>9} {'expected':>17}  sampled images"
    )
    for split, per in rec["counts"].items():
        e = exp.get(split)
        want = f"{e['real']:,} / {e['fake']:,}" if e else "-"
        folder = rec["folders"].get(split, "(none)")
        kinds = ", ".join(
            f"{c} {k} ({n})"
            for c in CLASSES
            for k, n in rec["images"]["kinds"].get(f"{folder}/{c}", {}).items()
        )
        lines.append(
            f"{split:6} {folder:7} {per['real']:>8,} {per['fake']:>8,} {per['real'] + per['fake']:>9,} {want:>17}  {kinds}"
        )
    d = rec["duplicates"]
    scope = "every file whose size recurs" if d["mode"] == "all" else "the sampled files' size groups"
    real, fake = (sum(per[c] for per in rec["counts"].values()) for c in CLASSES)
    lines.append(f"{'total':14} {real:>8,} {fake:>8,} {rec['total']:>9,}")
    lines.append(f"same file in two folders: {d['found']} ({d['files_hashed']:,} files hashed: {scope})")
    lines += [f"note: {n}" for n in rec["notes"]]
    lines += [f"PROBLEM: {p}" for p in rec["problems"]]
    if rec.get("accepted_subset"):
        lines.append(
            f"a subset of {rec['expect']} ({rec['total']:,} files), accepted on purpose (--accept-subset)"
        )
    lines.append(f"status: {rec['status']} ({rec['seconds']:.1f} s)")
    return "\n".join(lines)


def check_for_run(profile: Mapping[str, Any], data_root: str | None, accept_subset: bool = False) -> dict[str, Any]:  # fmt: skip
    """The data check at the start of ``run_all.py``: prints the table, writes the record, returns it.

    Arguments: ``profile`` the loaded profile (``expect_data``: the collection it must match, which
    makes the check binding, see :func:`refusal`); ``data_root`` the runs' ``data_root`` (portable);
    none: the notebooks use the profile's own data and the record says the check did not run.
    Returns the record, also written to ``reports/<profile>/metrics/data_check.json`` (the manifest's
    ``data_check``), with ``severity`` (``error`` where binding, else ``warning``) and ``profile``.
    Raises ``SystemExit`` with :func:`refusal`'s message when a binding check found problems.
    """
    from dfig import io

    expect = profile.get("expect_data") or None
    if not data_root:
        rec: dict[str, Any] = {
            "status": "not run",
            "reason": "no --data: the notebooks use the profile's own data (the synthetic set or the face sample)",
        }
    else:
        rec = check_tree(paths.resolve(data_root), expect, accept_subset=accept_subset)
        print(format_table(rec, paths.resolve(data_root)), flush=True)
        if rec["problems"] and not expect:
            for p in rec["problems"]:
                print(f"    DataWarning: {p}", flush=True)
    rec.update(profile=profile["name"], severity="error" if expect else "warning")
    io.save_json(rec, paths.metrics_dir(profile["name"]) / RECORD_NAME, portable=True)
    why = refusal(rec)
    if why:
        raise SystemExit(why)
    return rec


def data_tree(data: str | os.PathLike[str]) -> Path:
    """The dataset tree ``run_all.py --data`` names: the folder, or the one tree below it (printed).

    Arguments: ``data`` as given. Returns the tree (absolute; ``data`` itself when no tree is found
    below it: the data check then names what is missing). Raises ``SystemExit`` (one line) when it
    holds several trees.
    """
    given = Path(data).expanduser().resolve()
    try:
        root, note = find_data_root(given)
    except FileNotFoundError:
        return given  # the paper profile's preflight, or the data check, names what is missing
    except ValueError as e:
        raise SystemExit(f"--data: {e}") from None
    if note:
        print(note, flush=True)
    return root


def refusal(rec: Mapping[str, Any]) -> str | None:
    """Why the check stops the run, in one message; None when it does not.

    A tree the runs cannot read (a split or class folder missing: ``layout_problems``) stops every
    profile; any other problem stops a binding check (``severity: error``) only.
    """
    if rec.get("layout_problems"):
        return (
            f"data check of {rec['root']}: {'; '.join(rec['layout_problems'])}; the notebooks read "
            f"{LAYOUT_TEXT} (python -m dfig.data check DIR shows what is there)"
        )
    if rec.get("severity") != "error" or not rec.get("problems"):
        return None
    counts = any(p.startswith("counts differ") for p in rec["problems"])
    fix = (
        "fix the data (python -m dfig.data fetch/check), or pass --accept-subset to run on a known subset "
        "on purpose (recorded in the manifest)"
        if counts
        else "fix the data (python -m dfig.data fetch/check)"
    )
    return f"data check of {rec['root']} against {rec['expect']} failed: {'; '.join(rec['problems'])}. {fix}"


__all__ = [
    "RECORD_NAME",
    "SAMPLE_PER_FOLDER",
    "TreeFiles",
    "check_for_run",
    "check_tree",
    "count_problems",
    "data_tree",
    "file_digest",
    "find_duplicates",
    "format_table",
    "image_kind",
    "kind_problems",
    "pick_samples",
    "refusal",
    "scan_tree",
]
