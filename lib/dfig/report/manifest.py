"""The run manifest: what ran, where, with what, and which official weights or fallbacks were used."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from dfig import io, paths

PACKAGES = (
    "dfig",
    "torch",
    "torchvision",
    "segment-anything",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "scikit-learn",
    "pandas",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbval",
    "typst",
)


#: the code a result comes from: a change under these paths (and only these) marks the build "modified"
CODE_PATHS = ("lib", "notebooks", "profiles", "run_all.py", "paper")


#: the commit stamp of a copy without ``.git`` (written by benchmarks/device_carry.sh, make gpu-carry)
COMMIT_STAMP = "dfig-commit.json"


def git_info() -> dict[str, Any]:
    """Commit, branch and whether the code had uncommitted changes.

    Returns: ``{"commit", "branch", "dirty", "dirty_paths"}``. ``dirty``: a tracked file under
    :data:`CODE_PATHS` (``lib/``, ``notebooks/``, ``profiles/``, ``run_all.py``, ``paper/``) differs from
    the commit; ``dirty_paths`` names them. Regenerated outputs (``reports/``, ``DFIG_v2.pdf``), docs and
    tests never make a build "modified". A copy without ``.git`` (carried to a GPU machine) takes commit,
    branch and dirty from its :data:`COMMIT_STAMP`, adding ``"source": "dfig-commit.json"``; with neither,
    commit is "unknown".
    """

    def run(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=paths.root(), capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = run("rev-parse", "HEAD")
    stamp = paths.root() / COMMIT_STAMP
    if not commit and stamp.is_file():
        rec = io.load_json(stamp)
        return {k: rec.get(k, "unknown") for k in ("commit", "branch", "dirty")} | {"source": COMMIT_STAMP}
    changed = run("diff", "--name-only", "HEAD", "--", *CODE_PATHS).splitlines()  # staged or not
    return {
        "commit": commit or "unknown",
        "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(changed),
        "dirty_paths": changed,
    }


def torch_build() -> str:
    """The torch build actually imported: version with its local tag, and CUDA + cuDNN, ROCm or cpu.

    Returns: e.g. ``"2.11.0+cu130 (CUDA 13.0, cuDNN 91900)"`` or ``"2.14.1+cpu (cpu)"``.
    """
    import torch

    if torch.version.cuda:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        kind = f"CUDA {torch.version.cuda}, cuDNN {cudnn or 'absent'}"
    elif getattr(torch.version, "hip", None):
        kind = f"ROCm {torch.version.hip}"
    else:
        kind = "cpu"
    return f"{torch.__version__} ({kind})"


def package_versions() -> dict[str, str]:
    """Python, each of :data:`PACKAGES` (distribution version or "not installed"), and ``torch_build``."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    out["torch_build"] = torch_build()
    return out


def device_info() -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def stage_records(profile: str) -> dict[str, Any]:
    """The dfig_stage.json of every stage output in the profile's work folder."""
    work = paths.work_dir(profile)
    out = {}
    if work.is_dir():
        for p in sorted(work.glob("*/dfig_stage.json")):
            out[p.parent.name] = io.load_json(p)
    return out


def fallbacks_used(records: dict[str, Any]) -> list[dict[str, Any]]:
    """Every fallback record found (nested anywhere) in the stage records and training metrics."""
    found: list[dict[str, Any]] = []

    def walk(o: Any, where: str) -> None:
        if isinstance(o, dict):
            if "fallback" in o and "instead_of" in o:
                rec = {"where": where, **o}
                if rec not in found:
                    found.append(rec)
            for k, v in o.items():
                walk(v, f"{where}/{k}" if k != "input" else where)
        elif isinstance(o, list):
            for v in o:
                walk(v, where)

    for name, rec in records.items():
        walk(rec, name)
    # de-duplicate by (fallback, instead_of) keeping the stages that used it
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in found:
        key = (r["fallback"], r["instead_of"])
        m = merged.setdefault(key, {**{k: v for k, v in r.items() if k != "where"}, "used_in": []})
        stage = r["where"].split("/")[0]
        if stage not in m["used_in"]:
            m["used_in"].append(stage)
    return list(merged.values())


def standins_used(records: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stand-in weights file recorded (nested anywhere) in stage records / training metrics.

    Arguments: ``records`` = {where: record} (stage name or ``"train <run>"`` -> its JSON).
    Returns one entry per file: ``{weights, file, label, seed, used_in: [where, ...]}``.
    """
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}

    def walk(o: Any, where: str) -> None:
        if isinstance(o, dict):
            if o.get("kind") == "stand-in" and "label" in o:
                m = merged.setdefault(
                    (o.get("weights"), o.get("file")),
                    {
                        "weights": o.get("weights"),
                        "file": o.get("file"),
                        "label": o["label"],
                        "seed": o.get("seed"),
                        "used_in": [],
                    },
                )
                if where not in m["used_in"]:
                    m["used_in"].append(where)
            for v in o.values():
                walk(v, where)
        elif isinstance(o, list):
            for v in o:
                walk(v, where)

    for name, rec in records.items():
        walk(rec, name)
    return list(merged.values())


def train_records(profile: str) -> dict[str, Any]:
    """``{"train <run>": metrics/train_<run>.json}`` of the profile (where backbone weights are recorded)."""
    return {
        f"train {p.stem[6:]}": io.load_json(p)
        for p in sorted(paths.metrics_dir(profile).glob("train_*.json"))
    }


def split_counts(root: Path) -> dict[str, dict[str, int]]:
    """``{split: {"real": n, "fake": n}}`` of the labelled files of a tree (splits that exist only).

    Arguments: ``root`` a ``{train,val,test}/{real,fake}`` tree. Returns ``{}`` when it has none.
    """
    from dfig.data.layout import IMAGE_EXTS, SPLITS, discover

    out = {}
    for split in SPLITS:
        if (root / split).is_dir():
            try:
                found = discover(root, splits=(split,), exts=(*IMAGE_EXTS, ".npy"))[split]
            except FileNotFoundError:
                continue
            out[split] = {"real": sum(x.label == 0 for x in found), "fake": sum(x.label == 1 for x in found)}
    return out


def data_counts(profile: str) -> dict[str, Any]:
    """Counts of the profile's data trees: each stage's record (inputs, outputs, failed), and per tree the
    files per split and class (``per_split``, counted on disk) with the files it skipped (``skipped``).
    The photos the segmentation read (its ``input_dir``) are counted as ``photos``."""
    from dfig.data.layout import discover

    out: dict[str, Any] = {}
    work = paths.work_dir(profile)
    for name, rec in stage_records(profile).items():
        if rec.get("counts"):
            out[name] = dict(rec["counts"])
        per_split = split_counts(work / name)
        if per_split:
            out.setdefault(name, {})["per_split"] = per_split
            out[name]["skipped"] = int((rec.get("counts") or {}).get("failed") or 0)
        src = rec.get("input_dir") if rec.get("stage") == "segmentation" else None
        if src and "photos" not in out and paths.resolve(src).is_dir():
            out["photos"] = {
                "root": paths.portable(paths.resolve(src)),
                "per_split": split_counts(paths.resolve(src)),
            }
    try:
        raw = paths.work_dir(profile) / "raw"
        if raw.is_dir():
            d = discover(raw)
            out["raw"] = {
                s: {"real": sum(x.label == 0 for x in v), "fake": sum(x.label == 1 for x in v)}
                for s, v in d.items()
            }
    except FileNotFoundError:
        pass
    return out


def data_check_record(profile: str) -> dict[str, Any] | None:
    """The data check run_all.py made at the start of this invocation (:mod:`dfig.data.check`), or None."""
    from dfig.data.check import RECORD_NAME

    p = paths.metrics_dir(profile) / RECORD_NAME
    return io.load_json(p) if p.is_file() else None


def weights_status() -> list[dict[str, Any]]:
    try:
        from dfig import weights

        return weights.status()
    except Exception as e:  # noqa: BLE001 - the manifest must still be written
        return [{"error": f"weights status unavailable: {e}"}]


def merge_partial(old: dict[str, Any], man: dict[str, Any], seconds: float, started: str) -> dict[str, Any]:
    """Merge a partial run (``run_all.py --only``) into the manifest ``old`` of earlier runs.

    Arguments: ``old`` (the manifest on disk), ``man`` (this invocation's, with only its runs),
    ``seconds`` (this invocation's wall time), ``started`` (its start time, identifies it).
    Returns ``man`` with: ``runs`` = the earlier entries, each redone run replaced in place (new runs
    appended); ``total_seconds`` = the sum of the merged runs' times (the cost of the whole profile as
    it stands); ``partial_runs`` = earlier partial invocations plus this one (start, wall time, runs);
    ``status`` failed if any merged run failed.
    """
    this = [e["run"] for e in man["runs"]]
    new = {e["run"]: e for e in man["runs"]}
    runs = [new.pop(e["run"], e) for e in old.get("runs", [])] + list(new.values())
    man["runs"] = runs
    man["total_seconds"] = round(sum(float(e.get("seconds") or 0) for e in runs), 1)
    man["total_seconds_is"] = "sum of the per-run times (runs redone by partial runs replace earlier ones)"
    if man["status"] == "ok" and any(e.get("status") != "ok" for e in runs):
        man["status"] = "failed"
    earlier = [p for p in old.get("partial_runs", []) if p.get("started") != started]
    man["partial_runs"] = [
        *earlier,
        {"started": started, "finished": man["finished"], "seconds": round(seconds, 1), "runs": this},
    ]
    return man


def write_manifest(
    profile: dict[str, Any],
    entries: list[dict[str, Any]],
    seconds: float,
    status: int | str,
    partial: bool = False,
    started: str | None = None,
) -> Path:
    """Write reports/<profile>/manifest.json (atomically) and return its path.

    ``status``: 0 (ok), non-zero (failed) or ``"running"`` (a run in progress: with its ``pid`` and
    ``host``, no finish time; see :mod:`dfig.report.runstate`). ``partial`` (``run_all.py --only``): merged into the manifest on disk by :func:`merge_partial`
    (runs not redone are kept, the total time covers all runs); ``started`` identifies the invocation.
    """
    name = profile["name"]
    records = stage_records(name)
    man = {
        "profile": name,
        "description": profile.get("description", ""),
        "roots": paths.roots(),  # every path below is relative to the repository or starts with one of these
        "synthetic_data": any(
            r.get("synthetic") or r.get("input", {}).get("synthetic") for r in records.values()
        ),
        "allow_fallbacks": profile.get("allow_fallbacks", True),
        "finished": None if status == "running" else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": status if isinstance(status, str) else ("ok" if status == 0 else "failed"),
        **({"pid": os.getpid(), "host": platform.node()} if status == "running" else {}),
        "total_seconds": round(seconds, 1),
        "git": git_info(),
        "packages": package_versions(),
        "device": device_info(),
        "runs": entries,
        "data_counts": data_counts(name),
        "data_check": data_check_record(name),
        "weights": weights_status(),
        "fallbacks": fallbacks_used(records),
        "standins": standins_used({**records, **train_records(name)}),
        "stages": records,
    }
    dest = paths.reports_dir(name) / "manifest.json"
    old = io.load_json(dest) if dest.exists() else None
    if old and partial:
        man = merge_partial(old, man, seconds, started or man["finished"])
    # runs side by side (run_all.py --jobs, Slurm): the runs' own seconds summed, beside the wall time
    man["run_seconds"] = round(sum(float(r.get("seconds") or 0) for r in man["runs"]), 1)
    io.save_json(man, dest, portable=True)
    return dest


def read_manifest(profile: str) -> dict[str, Any]:
    p = paths.reports_dir(profile) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


__all__ = [
    "COMMIT_STAMP",
    "CODE_PATHS",
    "PACKAGES",
    "data_check_record",
    "data_counts",
    "device_info",
    "fallbacks_used",
    "git_info",
    "merge_partial",
    "package_versions",
    "split_counts",
    "read_manifest",
    "stage_records",
    "standins_used",
    "torch_build",
    "train_records",
    "weights_status",
    "write_manifest",
]
