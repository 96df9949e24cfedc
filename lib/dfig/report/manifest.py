"""The run manifest: what ran, where, with what, and which official weights or fallbacks were used."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
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


#: git pathspecs of the regenerated outputs, which do not make the code "dirty"
OUTPUTS_NOT_CODE = (":(exclude)reports", ":(exclude)DFIG_v2.pdf")
#: the code a result comes from: a change under these paths (and only these) marks the build "modified"
CODE_PATHS = ("lib", "notebooks", "profiles", "run_all.py", "paper")


def git_info() -> dict[str, Any]:
    """Commit, branch and whether the code had uncommitted changes.

    Returns: ``{"commit", "branch", "dirty", "dirty_paths"}``. ``dirty``: a tracked file under
    :data:`CODE_PATHS` (``lib/``, ``notebooks/``, ``profiles/``, ``run_all.py``, ``paper/``) differs from
    the commit; ``dirty_paths`` names them. Regenerated outputs (``reports/``, ``DFIG_v2.pdf``), docs and
    tests never make a build "modified".
    """

    def run(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", *a], cwd=paths.root(), capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = run("diff", "--name-only", "HEAD", "--", *CODE_PATHS).splitlines()  # staged or not
    return {
        "commit": run("rev-parse", "HEAD") or "unknown",
        "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(changed),
        "dirty_paths": changed,
    }


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
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
    if any(e.get("status") != "ok" for e in runs):
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
    status: int,
    partial: bool = False,
    started: str | None = None,
) -> Path:
    """Write reports/<profile>/manifest.json (atomically) and return its path.

    ``partial`` (``run_all.py --only``): merged into the manifest on disk by :func:`merge_partial`
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
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "ok" if status == 0 else "failed",
        "total_seconds": round(seconds, 1),
        "git": git_info(),
        "packages": package_versions(),
        "device": device_info(),
        "runs": entries,
        "data_counts": data_counts(name),
        "weights": weights_status(),
        "fallbacks": fallbacks_used(records),
        "standins": standins_used({**records, **train_records(name)}),
        "stages": records,
    }
    dest = paths.reports_dir(name) / "manifest.json"
    old = io.load_json(dest) if dest.exists() else None
    if old and partial:
        man = merge_partial(old, man, seconds, started or man["finished"])
    io.save_json(man, dest, portable=True)
    return dest


#: a template that drops the lab template's CDN scripts (require.js, MathJax, Mermaid, widget manager):
#: the executed notebooks hold text and embedded PNGs only, so the HTML renders fully offline
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def notebook_html(ipynb: Path) -> str:
    """An executed notebook as self-contained HTML: lab styles inline, no script loaded from the network.

    Arguments: ``ipynb``, the notebook file. Returns: the HTML text.
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"dfig_offline.html.j2": OFFLINE_TEMPLATE})],
        template_file="dfig_offline.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb)
    return body


def _portable_texts(v: Any) -> Any:
    return [paths.portable_text(x) for x in v] if isinstance(v, list) else paths.portable_text(v)


def portable_notebook(ipynb: Path) -> Path:
    """Rewrite an executed notebook so it names no absolute path of this machine.

    Arguments: ``ipynb``, the executed copy. The papermill metadata (input/output paths, parameters)
    goes through :func:`dfig.paths.portable_obj`; cell sources, printed text, tracebacks and text
    outputs through :func:`dfig.paths.portable_text`; images are left alone. Returns: ``ipynb``.
    """
    nb = io.load_json(ipynb)
    nb["metadata"] = paths.portable_obj(nb.get("metadata", {}))
    for cell in nb.get("cells", []):
        cell["source"] = _portable_texts(cell.get("source", ""))
        for out in cell.get("outputs", []):
            for key in ("text", "traceback", "evalue"):
                if key in out:
                    out[key] = _portable_texts(out[key])
            data = out.get("data", {})
            for mime in [m for m in data if not m.startswith("image/")]:
                data[mime] = _portable_texts(data[mime]) if isinstance(data[mime], str | list) else data[mime]
    io.atomic_write_text(ipynb, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return ipynb


def export_html(ipynb: Path) -> Path:
    """Write an HTML copy of an executed notebook next to it (readable offline, without Jupyter).

    Arguments: ``ipynb``, the executed notebook; it is first made portable (:func:`portable_notebook`),
    so neither copy names a machine path. Returns: the path of the ``.html`` file.
    """
    portable_notebook(ipynb)
    return io.atomic_write_text(ipynb.with_suffix(".html"), notebook_html(ipynb))


def read_manifest(profile: str) -> dict[str, Any]:
    p = paths.reports_dir(profile) / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else {}


__all__ = [
    "CODE_PATHS",
    "OFFLINE_TEMPLATE",
    "PACKAGES",
    "data_counts",
    "device_info",
    "export_html",
    "fallbacks_used",
    "git_info",
    "merge_partial",
    "notebook_html",
    "package_versions",
    "portable_notebook",
    "split_counts",
    "read_manifest",
    "stage_records",
    "standins_used",
    "train_records",
    "weights_status",
    "write_manifest",
]
