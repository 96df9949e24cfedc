"""The preflight plan: per stage, the files it reads per split, the disk each tree it writes will need
against the free space of its filesystem, and the projected time on 1 and on N GPUs from the device
check's measured rates (``benchmarks/device_table.py`` writes ``device_check.json``).

Bytes per file are measured on the first few files of a tree that exists (a rerun), else estimated from
the first few input images' sizes (PNG faces <= 3 bytes/pixel, binary masks, LNP PNG 3 bytes/pixel,
clean LNP float16 = 6 bytes/pixel); checkpoints from the backbone's parameter count. Time: SAM, LNP
and training images at the measured rates (training capped by ``max_minutes``; robustness = test photos
x 7 through SAM and the LNP); work no benchmark measures (spectra, the paper) counts 0 s. N GPUs: the
runs of a stage spread over N workers, longest first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.data.layout import SPLITS, split_dir

#: files measured per tree for bytes per file
SAMPLE_FILES = 8
#: bytes per pixel of a tree that does not exist yet, by its kind (upper bounds)
BYTES_PER_PIXEL = {"faces": 3.0, "masks": 0.15, "lnp_compat": 3.0, "lnp_clean": 6.0}
#: trainable parameters of each backbone (5-channel stem, one logit); a checkpoint pair (best: weights;
#: latest: weights + Adam's two moments) holds 4 + 12 bytes per parameter
PARAMS = {"res50": 23.5e6, "res34": 21.3e6, "mobilev2": 2.2e6}
#: one run's reports (figures, tables, predictions, executed copy) when nothing is measured
REPORT_BYTES_PER_RUN = 2e6
#: robustness perturbations in 05_evaluate (dfig.stages.robustness.DEFAULT_PERTURBATIONS)
N_PERTURBATIONS = 7


def count_split_files(root: Path) -> dict[str, int]:
    """Files under each split's folder (``val`` or ``valid``: :func:`~dfig.data.layout.split_dir`) of
    ``root`` (0 where absent), by one walk of each split."""
    out = {}
    for s in SPLITS:
        n = 0
        for _, _, files in os.walk(split_dir(root, s)):
            n += sum(1 for f in files if not f.startswith("."))
        out[s] = n
    return out


def first_files(root: Path, k: int = SAMPLE_FILES) -> list[Path]:
    """The first ``k`` files of ``root`` in sorted walk order (cheap: stops after ``k``)."""
    found: list[Path] = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        found += [Path(d) / f for f in sorted(files) if not f.startswith((".", "dfig_"))][: k - len(found)]
        if len(found) >= k:
            break
    return found


def mean_pixels(root: Path) -> float:
    """Mean pixels of the first few images of ``root`` (headers only), 0 when none can be read."""
    from PIL import Image

    px = []
    for f in first_files(root):
        try:
            with Image.open(f) as im:
                px.append(im.width * im.height)
        except (OSError, ValueError):
            continue
    return sum(px) / len(px) if px else 0.0


def tree_need(tree: Path, n_files: int, kind: str, pixels: float) -> dict[str, Any]:
    """Disk a tree of ``n_files`` will need: measured bytes/file x N when it has files, else the kind's
    bytes per pixel x ``pixels``. Returns {tree, files, bytes_per_file, bytes, how, existing}."""
    sample = first_files(tree) if tree.is_dir() else []
    if sample:
        bpf, how = sum(f.stat().st_size for f in sample) / len(sample), f"measured on {len(sample)} files"
    else:
        bpf, how = BYTES_PER_PIXEL[kind] * pixels, f"estimated ({BYTES_PER_PIXEL[kind]:g} B/pixel)"
    existing = sum(count_split_files(tree).values()) if sample else 0
    need = bpf * max(0, n_files - existing)
    if existing:  # a rerun: say why little or nothing more is needed
        how = f"{min(existing, n_files)} of {n_files} files exist, {bpf / 1e3:.0f} kB each, {how}"
    return {
        "tree": paths.portable(tree),
        "files": n_files,
        "bytes_per_file": bpf,
        "bytes": need,
        "how": how,
        "path": tree,
    }


def stage_rows(
    profile: dict[str, Any], runs: list[dict[str, Any]], rates: dict[str, float]
) -> list[dict[str, Any]]:
    """One row per run: stage, what it reads (files per split), the trees it writes, projected seconds."""
    work = paths.work_dir(profile["name"])
    raw = input_root(profile, runs, work)
    counts = count_split_files(raw) if raw else dict.fromkeys(SPLITS, 0)
    pixels = mean_pixels(raw) if raw else 0.0
    total = sum(counts.values())
    rows = []
    for r in runs:
        p, nb = r["parameters"], r["notebook"]
        row: dict[str, Any] = {
            "run": r["name"],
            "notebook": nb,
            "reads": counts,
            "writes": [],
            "seconds": 0.0 if rates else None,  # with rates, work no benchmark measures counts 0 s
        }
        if nb == "01_segmentation":
            name = p.get("faces_name", "faces")
            row["writes"] = [
                tree_need(work / name, total, "faces", pixels),
                tree_need(work / f"{name}_masks", total, "masks", pixels),
            ]
            if p.get("segmenter", "sam") == "sam" and rates.get("sam"):
                row["seconds"] = total / rates["sam"]
        elif nb == "02_lnp":
            kind = "lnp_clean" if p.get("save_mode") == "clean" else "lnp_compat"
            row["writes"] = [tree_need(work / p.get("lnp_name", "lnp"), total, kind, pixels)]
            row["seconds"] = total / rates["lnp"] if rates.get("lnp") else None
        elif nb == "04_train":
            row.update(train_row(r, counts, rates, work))
        elif nb == "05_evaluate":
            n_rob = min(counts["test"], int(p.get("robustness_max_images") or counts["test"]))
            if rates.get("sam") and rates.get("lnp"):
                row["seconds"] = n_rob * N_PERTURBATIONS * (1 / rates["sam"] + 1 / rates["lnp"])
        rows.append(row)
    return rows


def train_row(
    run: dict[str, Any], counts: dict[str, int], rates: dict[str, float], work: Path
) -> dict[str, Any]:
    """A training run's checkpoints (parameter count x 16 bytes) and time (epochs x (train + val/3) images
    at the measured rate, capped by ``max_minutes``)."""
    p = run["parameters"]
    ckpt = PARAMS.get(str(p.get("arch", "res50")), PARAMS["res50"]) * 16
    writes = [
        {
            "tree": paths.portable(paths.checkpoints_dir(p.get("profile"))),
            "files": 2,
            "bytes_per_file": ckpt / 2,
            "bytes": ckpt,
            "how": "parameter count x 16 B",
            "path": paths.checkpoints_dir(p.get("profile")),
        }
    ]
    seconds = None
    if rates.get("train"):
        seconds = int(p.get("epochs") or 1) * (counts["train"] + counts["val"] / 3) / rates["train"]
        if p.get("max_minutes"):
            seconds = min(seconds, float(p["max_minutes"]) * 60)
    return {"writes": writes, "seconds": seconds}


def input_root(profile: dict[str, Any], runs: list[dict[str, Any]], work: Path) -> Path | None:
    """The raw photo tree the profile reads: ``data_root``, the sample for ``sample``, the synthetic set."""
    given = next((r["parameters"].get("data_root") for r in runs if r["parameters"].get("data_root")), None)
    if given:
        return paths.resolve(given)
    if profile["name"] == "sample" or profile.get("default_data") == "sample":
        return paths.sample_data_dir()
    return work / "raw" if (work / "raw").is_dir() else None


def load_rates(rates_file: str | None) -> dict[str, float]:
    """Images per second of SAM, the LNP and training from ``device_check.json`` ({} when not given)."""
    if not rates_file:
        return {}
    try:
        bench = json.loads(Path(rates_file).read_text(encoding="utf-8")).get("bench", {})
    except (OSError, ValueError) as e:
        raise SystemExit(
            f"--rates {rates_file}: cannot read it ({e}); give benchmarks/device_table.py's device_check.json"
        ) from e
    return {s: float(b["ours_img_s"]) for s, b in bench.items() if b and b.get("ours_img_s")}


def makespan(seconds: list[float], workers: int) -> float:
    """Wall seconds of independent runs on ``workers`` (longest first, each to the least loaded worker)."""
    load = [0.0] * max(1, workers)
    for s in sorted(seconds, reverse=True):
        load[load.index(min(load))] += s
    return max(load)


def disk_check(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Need per filesystem against its free space: [{filesystem, need, free, trees}]."""
    by_fs: dict[int, dict[str, Any]] = {}
    for w in (w for r in rows for w in r["writes"]):
        probe = w["path"]
        while not probe.exists():
            probe = probe.parent
        fs = by_fs.setdefault(
            os.stat(probe).st_dev, {"free": shutil.disk_usage(probe).free, "need": 0.0, "trees": {}}
        )
        fs["need"] += w["bytes"]
        fs["trees"][w["tree"]] = fs["trees"].get(w["tree"], 0.0) + w["bytes"]
    return list(by_fs.values())


def make_plan(
    profile: dict[str, Any], runs: list[dict[str, Any]], rates_file: str | None = None, workers: int = 8
) -> dict[str, Any]:
    """The plan of ``runs``: rows per run, stages (summed disk, seconds on 1 and ``workers`` GPUs), disk."""
    rates = load_rates(rates_file)
    rows = stage_rows(profile, runs, rates)
    reports = {
        "tree": paths.portable(paths.reports_dir(profile["name"])),
        "files": len(runs),
        "bytes_per_file": REPORT_BYTES_PER_RUN,
        "bytes": REPORT_BYTES_PER_RUN * len(runs),
        "how": "2 MB per run",
        "path": paths.reports_dir(profile["name"]),
    }
    rows[-1]["writes"].append(reports) if rows else None
    stages = []
    for nb in dict.fromkeys(r["notebook"] for r in rows):
        rs = [r for r in rows if r["notebook"] == nb]
        secs = [r["seconds"] for r in rs]
        known = None if any(s is None for s in secs) else secs
        stages.append(
            {
                "notebook": nb,
                "runs": len(rs),
                "reads": rs[0]["reads"],
                "bytes": sum(w["bytes"] for r in rs for w in r["writes"]),
                "writes": merge_writes([w for r in rs for w in r["writes"]]),
                "seconds_1": sum(known) if known else None,
                "seconds_n": makespan(known, workers) if known else None,
            }
        )
    return {
        "profile": profile["name"],
        "workers": workers,
        "rates": rates,
        "stages": stages,
        "disk": disk_check(rows),
    }


def merge_writes(writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per tree (the runs of a stage that write one tree, e.g. checkpoints): bytes summed."""
    out: dict[str, dict[str, Any]] = {}
    for w in writes:
        if w["tree"] in out:
            out[w["tree"]] = {**out[w["tree"]], "bytes": out[w["tree"]]["bytes"] + w["bytes"]}
        else:
            out[w["tree"]] = dict(w)
    return list(out.values())


def gb(b: float) -> str:
    """Bytes as GB with 2 decimals (MB below 0.1 GB)."""
    return f"{b / 1e9:.2f} GB" if b >= 1e8 else f"{b / 1e6:.1f} MB"


def hours(s: float | None) -> str:
    """Seconds as hours/minutes, '-' when not projected (no rate)."""
    if s is None:
        return "-"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as console lines: one per stage, then the disk need against the free space."""
    n = plan["workers"]
    head = (
        "plan: time from --rates"
        if plan["rates"]
        else "plan: no --rates (device_check.json): time not projected"
    )
    lines = [f"{head}; stage | runs | reads train/val/test | writes | 1 GPU | {n} GPUs"]
    for s in plan["stages"]:
        reads = "/".join(str(s["reads"][k]) for k in SPLITS)
        trees = ", ".join(f"{w['tree']} {gb(w['bytes'])} ({w['how']})" for w in s["writes"]) or "-"
        lines.append(
            f"  {s['notebook']} | {s['runs']} | {reads} | {trees} | {hours(s['seconds_1'])} | {hours(s['seconds_n'])}"
        )
    for fs in plan["disk"]:
        ok = "ok" if fs["need"] <= fs["free"] else "NOT ENOUGH"
        lines.append(
            f"plan: disk {gb(fs['need'])} needed, {gb(fs['free'])} free on the filesystem of {next(iter(fs['trees']))}: {ok}"
        )
    return "\n".join(lines)


def disk_refusal(plan: dict[str, Any]) -> str | None:
    """The one-line refusal when a filesystem cannot hold the trees written on it, else None."""
    for fs in plan["disk"]:
        if fs["need"] > fs["free"]:
            big = ", ".join(
                f"{t} {gb(b)}" for t, b in sorted(fs["trees"].items(), key=lambda kv: -kv[1]) if b > 0
            )
            return (
                f"not enough disk: the run needs {gb(fs['need'])} ({big}) but its filesystem has {gb(fs['free'])} free; "
                "free space or point DFIG_WORK/DFIG_REPORTS elsewhere (run_all.py --plan shows the plan)"
            )
    return None


__all__ = [
    "count_split_files",
    "disk_check",
    "disk_refusal",
    "first_files",
    "format_plan",
    "load_rates",
    "make_plan",
    "makespan",
    "merge_writes",
    "mean_pixels",
    "stage_rows",
    "tree_need",
]
