"""Give every image of a test tree the same history, so a detector cannot score on format alone.

Public fake-face sets differ from their real counterparts in size, format and JPEG history, and a
detector can score well on that alone (the "Fake or JPEG?" bias, Grommelt et al. 2024). This stage
gives both classes one history: decode (EXIF orientation applied) -> RGB -> resize the shorter side
to ``size`` with one resampling filter -> centre crop ``size x size`` -> JPEG at one quality with fixed
chroma subsampling, standard tables, no EXIF and no ICC profile.

``python -m dfig.data.harmonize --input_dir SRC --output_dir DST [--size 256 --jpeg_quality 75]``
mirrors the tree (``a/b/x.png`` -> ``a/b/x.jpg``), never writes into the input, writes every file
atomically, resumes (existing outputs are kept), skips bad files (counted and named) and records what it
did in ``DST/dfig_stage.json`` (stage ``harmonize``; size, quality, filter, subsampling, counts, and per
class the source formats and sizes before harmonising). :func:`harmonize_note` reads that record back.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from dfig.data.images import BAD_FILE_POLICIES, BadImageError, load_rgb
from dfig.data.layout import CLASS_DIRS, CLASS_NAMES, IMAGE_EXTS
from dfig.io import atomic_path, read_stage_meta, update_stage_meta
from dfig.runlog import RunReport
from dfig.tree import TreePlan, plan_tree, record_run, remove_orphans

STAGE = "harmonize"
DEFAULT_SIZE = 256
DEFAULT_QUALITY = 75
#: resampling filters by name (one is used for every image of a run)
FILTERS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
}
DEFAULT_FILTER = "bicubic"
#: chroma subsampling name -> PIL's ``subsampling`` value
SUBSAMPLINGS: dict[str, int] = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
DEFAULT_SUBSAMPLING = "4:2:0"
SUFFIX = ".jpg"
#: the record entries that must match for a rerun to resume into the same folder
_PARAMS = ("size", "jpeg_quality", "filter", "subsampling")


def harmonize_image(
    img: Image.Image, size: int = DEFAULT_SIZE, resample: str = DEFAULT_FILTER
) -> Image.Image:
    """Resize the shorter side of ``img`` to ``size`` (filter ``resample``) and crop the centre square.

    Arguments: ``img`` an RGB PIL image. Returns a ``size x size`` RGB image (the input itself is not
    changed). An image whose shorter side already equals ``size`` is only cropped (no resampling).
    """
    w, h = img.size
    if min(w, h) != size:
        s = size / min(w, h)
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        img = img.resize((nw, nh), FILTERS[resample], reducing_gap=None)
        w, h = nw, nh
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def write_jpeg(
    img: Image.Image, dest: str | Path, quality: int = DEFAULT_QUALITY, subsampling: str = DEFAULT_SUBSAMPLING
) -> Path:
    """Save ``img`` as a baseline JPEG (standard tables at ``quality``, no EXIF/ICC) atomically at ``dest``."""
    with atomic_path(dest) as tmp:
        img.save(
            tmp,
            format="JPEG",
            quality=int(quality),
            subsampling=SUBSAMPLINGS[subsampling],
            optimize=False,
            progressive=False,
        )
    return Path(dest)


def class_of(path: Path, root: Path) -> str:
    """``real``/``fake`` from the first class folder (``real``, ``fake``, ``0_real``, ``1_fake``) in
    ``path`` below ``root``, else ``other``."""
    for part in path.relative_to(root).parts[:-1]:
        if part in CLASS_DIRS:
            return CLASS_NAMES[CLASS_DIRS[part]]
    return "other"


def _header(path: Path) -> tuple[str, str, str]:
    """(format, WxH, JPEG subsampling or '-') from the file header; ('unreadable', '-', '-') on failure."""
    try:
        with Image.open(path) as im:
            sub = "-"
            if im.format == "JPEG":
                from PIL import JpegImagePlugin

                sub = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im), "other")
            return str(im.format), f"{im.size[0]}x{im.size[1]}", sub
    except (OSError, ValueError, SyntaxError):
        return "unreadable", "-", "-"


def source_summary(files: Sequence[Path], root: Path, top: int = 5) -> dict[str, Any]:
    """Per class: number of files and the most common source formats, sizes and JPEG subsamplings.

    Arguments: ``files`` the inputs; ``root`` the input tree; ``top`` entries kept per counter.
    Returns ``{class: {"files", "formats", "sizes", "jpeg_subsampling"}}`` (headers only, no decode).
    """
    acc: dict[str, dict[str, Counter[str]]] = {}
    for f in files:
        fmt, wh, sub = _header(f)
        c = acc.setdefault(
            class_of(f, root), {"formats": Counter(), "sizes": Counter(), "jpeg_subsampling": Counter()}
        )
        c["formats"][fmt] += 1
        c["sizes"][wh] += 1
        if sub != "-":
            c["jpeg_subsampling"][sub] += 1
    return {
        cls: {"files": sum(c["formats"].values()), **{k: dict(v.most_common(top)) for k, v in c.items()}}
        for cls, c in sorted(acc.items())
    }


def _check_output(out: Path, params: dict[str, Any]) -> None:
    old = read_stage_meta(out)
    if old and old.get("stage") != STAGE:
        raise ValueError(
            f"--output_dir {out} holds a {old.get('stage')!r} stage, not a harmonised tree: "
            "choose another folder"
        )
    if (
        not old
        and out.is_dir()
        and any(p for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    ):
        raise ValueError(
            f"--output_dir {out} is not empty and holds no harmonise record: choose an empty folder "
            "(nothing that this stage did not write is ever overwritten)"
        )
    diff = {k: (old.get(k), params[k]) for k in _PARAMS if old and old.get(k) != params[k]}
    if diff:
        raise ValueError(
            f"--output_dir {out} was harmonised with other settings ({', '.join(f'{k} {a} not {b}' for k, (a, b) in diff.items())}): "
            "choose another folder or rerun with the same settings"
        )


def harmonize_tree(
    input_dir: str | Path,
    output_dir: str | Path,
    size: int = DEFAULT_SIZE,
    jpeg_quality: int = DEFAULT_QUALITY,
    resample: str = DEFAULT_FILTER,
    subsampling: str = DEFAULT_SUBSAMPLING,
    policy: str = "skip",
    progress: bool = True,
) -> dict[str, Any]:
    """Harmonise every image under ``input_dir`` into the mirrored ``.jpg`` under ``output_dir``.

    Arguments: ``size`` output side (px); ``jpeg_quality`` 1-95; ``resample`` a :data:`FILTERS` name;
    ``subsampling`` a :data:`SUBSAMPLINGS` name; ``policy`` ``skip`` (bad files counted and named) or
    ``strict`` (raise). Existing outputs are kept (resume); a folder made with other settings, another
    stage's folder or a non-empty folder without a record is refused. Returns the stage record written.
    """
    params = _validate(size, jpeg_quality, resample, subsampling, policy)
    inp, out = Path(input_dir), Path(output_dir)
    if not inp.is_dir():
        raise FileNotFoundError(f"--input_dir {inp}: no such folder (check the path)")
    plan = plan_tree(inp, out, SUFFIX, exts=IMAGE_EXTS)  # refuses an output inside the input
    _check_output(out, params)
    report = RunReport(STAGE)
    report.skipped_existing = len(plan.existing)
    plan.report_refused(report)
    out.mkdir(parents=True, exist_ok=True)
    report.removed_part_files = remove_orphans(plan, out, 1)
    before = source_summary(plan.inputs, inp.resolve())
    src_meta = {"input_dir": str(inp.resolve()), "input": read_stage_meta(inp)}
    update_stage_meta(out, lambda old: {**old, "stage": STAGE, **params, **src_meta, "complete": False})
    resized = _convert_all(plan, inp.resolve(), report, params, policy, progress)
    counts = record_run(out, plan, report, {"done": report.done, "skipped_existing": report.skipped_existing})

    def finish(old: dict[str, Any]) -> dict[str, Any]:
        prev = Counter(old.get("resized") or {})
        prev.update(resized)
        return {
            **old,
            "source_summary": before,
            "resized": dict(sorted(prev.items())),
            "output": {
                "format": "JPEG",
                "size": [size, size],
                "mode": "RGB",
                "exif": False,
                "icc_profile": False,
            },
            "pipeline": f"decode (EXIF orientation) -> RGB -> shorter side to {size} px ({resample}) -> centre "
            f"crop {size}x{size} -> JPEG q{jpeg_quality} {subsampling}, no EXIF/ICC",
        }

    rec = update_stage_meta(out, finish)
    report.extra["counts"] = counts
    return {**rec, "report": report}


def _convert_all(
    plan: TreePlan, root: Path, report: RunReport, params: dict[str, Any], policy: str, progress: bool
) -> Counter[str]:
    """Convert ``plan.todo``; returns per class the number of images that were resampled (not only cropped)."""
    from dfig.progress import tqdm

    resized: Counter[str] = Counter()
    for src, dest in tqdm(plan.todo, desc="harmonize", unit="img", disable=not progress):
        try:
            img = load_rgb(src)
        except BadImageError as e:
            if policy == "strict":
                raise
            report.fail(e.path, e.reason)
            continue
        if min(img.size) != params["size"]:
            resized[class_of(src, root)] += 1
        write_jpeg(
            harmonize_image(img, params["size"], params["filter"]),
            dest,
            params["jpeg_quality"],
            params["subsampling"],
        )
        report.done += 1
    return resized


def _validate(size: int, quality: int, resample: str, subsampling: str, policy: str) -> dict[str, Any]:
    if int(size) < 8:
        raise ValueError(f"--size must be >= 8 px, got {size}")
    if not 1 <= int(quality) <= 95:
        raise ValueError(f"--jpeg_quality must be in 1..95, got {quality}")
    if resample not in FILTERS:
        raise ValueError(f"--filter must be one of {', '.join(FILTERS)}, got {resample!r}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"--subsampling must be one of {', '.join(SUBSAMPLINGS)}, got {subsampling!r}")
    if policy not in BAD_FILE_POLICIES:
        raise ValueError(f"--policy must be one of {BAD_FILE_POLICIES}, got {policy!r}")
    return {"size": int(size), "jpeg_quality": int(quality), "filter": resample, "subsampling": subsampling}


def harmonize_note(folder: str | Path) -> str:
    """One line saying how ``folder`` was harmonised (from its stage record), or ``""`` when it was not.

    Arguments: ``folder`` a test tree. Returns e.g. ``"harmonised: 256 px, JPEG q75 4:2:0, bicubic"``,
    with `` (incomplete)`` when the record says the stage did not finish.
    """
    rec = read_stage_meta(folder)
    if rec.get("stage") != STAGE:
        return ""
    note = f"harmonised: {rec.get('size')} px, JPEG q{rec.get('jpeg_quality')} {rec.get('subsampling')}, {rec.get('filter')}"
    return note + ("" if rec.get("complete") else " (incomplete)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.data.harmonize --input_dir SRC --output_dir DST [--size 256 --jpeg_quality 75]``."""
    from dfig.clierrors import USER_ERRORS, fail, output_error

    ap = argparse.ArgumentParser(prog="python -m dfig.data.harmonize", description=__doc__.split("\n")[0])
    ap.add_argument("--input_dir", required=True, help="image tree to harmonise (read only)")
    ap.add_argument(
        "--output_dir", required=True, help="where the harmonised tree is written (mirrored, .jpg)"
    )
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--jpeg_quality", type=int, default=DEFAULT_QUALITY)
    ap.add_argument("--filter", default=DEFAULT_FILTER, choices=list(FILTERS))
    ap.add_argument("--subsampling", default=DEFAULT_SUBSAMPLING, choices=list(SUBSAMPLINGS))
    ap.add_argument("--policy", default="skip", choices=BAD_FILE_POLICIES, help="bad input files")
    ap.add_argument("--no_progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        rec = harmonize_tree(
            a.input_dir,
            a.output_dir,
            a.size,
            a.jpeg_quality,
            a.filter,
            a.subsampling,
            a.policy,
            not a.no_progress,
        )
    except USER_ERRORS as e:
        return fail(output_error(e, a.output_dir, "--output_dir"))
    print(rec["report"].summary())
    print(f"stage record: {Path(a.output_dir) / 'dfig_stage.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "STAGE",
    "DEFAULT_SIZE",
    "DEFAULT_QUALITY",
    "FILTERS",
    "DEFAULT_FILTER",
    "SUBSAMPLINGS",
    "DEFAULT_SUBSAMPLING",
    "harmonize_image",
    "write_jpeg",
    "class_of",
    "source_summary",
    "harmonize_tree",
    "harmonize_note",
    "main",
]
