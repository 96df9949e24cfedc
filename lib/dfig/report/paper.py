"""Rebuild the paper (``DFIG_v2.pdf``) from a profile's regenerated results.

:func:`paper_data` reads the tables (CSV), figures, metrics and manifest of ``reports/<profile>/``
and writes ``reports/<profile>/paper_data.json``: every number the paper prints, already formatted.
``paper/main.typ`` reads only that file (Typst ``json``) and the figures, so no number is typed into
the paper source. :func:`build_paper` compiles it with the ``typst`` Python package.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from dfig import io, paths
from dfig.report import crossgen, manifest, recipe
from dfig.report.banner import BANNERS, CUT_SHORT, banner, cut_short_runs
from dfig.report.evaluate import BACKBONE_NAMES


def fmt(x: Any, digits: int = 3) -> str:
    """A number for the paper: fixed digits, '-' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, int | float):
        return f"{x:.{digits}f}"
    return str(x)


def fmt_ci(point: Any, lo: Any, hi: Any) -> str:
    return "-" if point is None or pd.isna(point) else f"{fmt(point)} [{fmt(lo)}, {fmt(hi)}]"


def _table(name: str, profile: str) -> pd.DataFrame | None:
    p = paths.tables_dir(profile) / f"{name}.csv"
    return pd.read_csv(p) if p.exists() else None


def _caption(name: str, profile: str) -> str:
    p = paths.tables_dir(profile) / f"{name}.md"
    if not p.exists():
        return ""
    first = p.read_text(encoding="utf-8").splitlines()[0]
    return "" if first.startswith("|") else first


def _fig(name: str, profile: str) -> str | None:
    p = paths.figures_dir(profile) / f"{name}.png"
    # relative to reports/<profile>/ (paper_data.json is committed: no machine path); build_paper
    # gives typst that folder as the input ``reports``
    return p.relative_to(paths.reports_dir(profile)).as_posix() if p.exists() else None


def _fmt_models(r: pd.Series) -> list[str]:
    return [
        r["run"],
        r.get("family", "DFIG"),
        fmt(r["test_acc"]),
        fmt(r["real_acc"]),
        fmt(r["fake_acc"]),
        fmt_ci(r["ap"], r["ap_lo"], r["ap_hi"]),
        fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"]),
        fmt(r["eer"]),
        fmt(r["test_acc_at_val_threshold"]),
        epochs_cell(r),
        fmt(r["train_minutes"], 1),
    ]


def epochs_cell(r: pd.Series) -> str:
    """``"8 (best 2; epochs)"``: epochs run, the best-val epoch and why training stopped (peers: n/a)."""
    if r.get("family") == "peer" or pd.isna(r.get("best_epoch", float("nan"))):
        return fmt(r["epochs"], 0)
    why = r.get("stopped_by") or "?"
    why = "CUT SHORT by max_minutes" if why == CUT_SHORT else why
    return f"{fmt(r['epochs'], 0)} (best {fmt(r['best_epoch'], 0)}; {why})"


def _fmt_backbones(r: pd.Series) -> list[str]:
    return [
        r["backbone"],
        fmt(r["val_acc"], 2),
        fmt(r["reported_val_acc"], 2),
        fmt(r["test_acc"], 2),
        fmt(r["reported_test_acc"], 2),
        fmt(r["test_auc"]),
        fmt(r["test_ap"]),
        fmt(r["train_minutes"], 1),
        fmt(r["reported_hours"], 0),
    ]


def _fmt_pair(r: pd.Series) -> list[str]:
    row = [r["variant"]]
    for name in BACKBONE_NAMES.values():
        acc, auc = r[f"{name} acc"], r[f"{name} AUC"]
        row += ["-" if pd.isna(acc) else f"{fmt(acc, 2)} ({fmt(auc)})", fmt(r[f"{name} reported acc"], 2)]
    return row


def _fmt_ablation(r: pd.Series) -> list[str]:
    ci = fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"])
    return [r["input"], r["run"], fmt(r["test_acc"], 2), fmt(r["ap"]), ci]


def _fmt_robustness(r: pd.Series) -> list[str]:
    return [r["perturbation"], fmt(r.get("n"), 0), fmt(r["acc"]), fmt(r["ap"]), fmt(r["roc_auc"])]


def _fmt_table3(r: pd.Series) -> list[str]:
    ours = "-" if not r["trained"] else f"{fmt(r['test_acc'], 1)}"
    auc = "-" if not r["trained"] else fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"])
    return [r["method"], fmt(r["reported_acc"], 1), r["run"], r["what"], ours, auc]


def _fmt_crossgen(r: pd.Series) -> list[str]:
    row = [r["generator"], r["run"], r["family"]]
    for v in crossgen.VERSIONS:
        if f"{v}_roc_auc" not in r:
            row += ["-", "-"]
            continue
        row += [fmt_ci(r[f"{v}_roc_auc"], r[f"{v}_roc_auc_lo"], r[f"{v}_roc_auc_hi"]), fmt(r[f"{v}_acc"])]
    return row


def _fmt_cross(r: pd.Series) -> list[str]:
    h = str(r.get("history", "-"))
    return [r["test_folder"], h, fmt(r["n"], 0), fmt(r["acc"]), fmt(r["ap"]), fmt(r["roc_auc"])]


def _fmt_experiment(r: pd.Series) -> list[str]:
    row = [r["variant"], fmt(r["epochs"], 0), str(r["seeds"]), str(r["val_auc"])]
    return row + [fmt(r["mean"]), fmt(r["spread"]), r["decision"]]


_MODELS_HEADER = ["run", "family", "acc", "real acc", "fake acc", "AP [95% CI]", "ROC-AUC [95% CI]", "EER"]
_PAIR_HEADER = ["variant"] + [f"{n}: {s}" for n in BACKBONE_NAMES.values() for s in ("ours", "rep.")]
_ABLATION_HEADER = ["input", "run", "test acc %", "AP", "ROC-AUC [95% CI]"]
#: the paper's tables, in order: file name -> (header, row formatter, left out when it has no rows)
TABLE_FORMATS: dict[str, tuple[list[str], Callable[[pd.Series], list[str]], bool]] = {
    "models": ([*_MODELS_HEADER, "acc @ val thr", "epochs (best; stop)", "min"], _fmt_models, False),
    "table1_2_backbones": (
        ["backbone", "val acc %", "val acc % (rep.)", "test acc %", "test acc % (rep.)"]
        + ["test AUC", "test AP", "train min", "train h (rep.)"],
        _fmt_backbones,
        False,
    ),
    "table4_sam": (_PAIR_HEADER, _fmt_pair, False),
    "table5_spectra": (_PAIR_HEADER, _fmt_pair, False),
    "table6_fusion": (_PAIR_HEADER, _fmt_pair, False),
    "ablation_inputs": (_ABLATION_HEADER, _fmt_ablation, True),
    "ablation_lnp_save": (_ABLATION_HEADER, _fmt_ablation, True),
    "robustness": (
        ["perturbation (before feature extraction)", "n", "acc", "AP", "ROC-AUC"],
        _fmt_robustness,
        True,
    ),
    "cross_generator": (["test folder", "history", "n", "acc", "AP", "ROC-AUC"], _fmt_cross, True),
    "table3_comparison": (
        ["method", "acc % (rep.)", "our run", "what our run is", "test acc %", "ROC-AUC [95% CI]"],
        _fmt_table3,
        False,
    ),
    "crossgen": (
        ["generator", "run", "family", "raw: ROC-AUC [95% CI]", "raw: acc"]
        + ["harmonised: ROC-AUC [95% CI]", "harmonised: acc"],
        _fmt_crossgen,
        True,
    ),
    "experiments_spectral": (
        ["variant", "epochs", "seeds", "best val AUC per seed", "mean", "spread", "decision"],
        _fmt_experiment,
        True,
    ),
}
#: tables stored in a long form and shown wide in the paper: name -> the function that widens them
WIDE = {"crossgen": crossgen.wide_table}


def format_tables(profile: str) -> dict[str, dict[str, Any]]:
    """Each result table as {caption, header, rows} of strings, ready for the paper.

    Arguments: ``profile``. Returns ``{name: {"header", "rows", "caption"}}`` for every table of
    :data:`TABLE_FORMATS` whose CSV exists under ``reports/<profile>/tables`` (some only when non-empty).
    """
    out: dict[str, dict[str, Any]] = {}
    for key, (header, row, skip_empty) in TABLE_FORMATS.items():
        df = _table(key, profile)
        if df is None or (skip_empty and not len(df)):
            continue
        df = WIDE[key](df) if key in WIDE else df
        out[key] = {"header": list(header), "rows": [row(r) for _, r in df.iterrows()]}
    for key, t in out.items():
        t["caption"] = _caption(key, profile)
    return out


def method_and_peers(profile: str) -> tuple[pd.DataFrame | None, list[dict[str, str]]]:
    """The models table's DFIG rows (the method) and its classical peers, formatted."""
    every = _table("models", profile)
    if every is None or "family" not in every:
        return every, []
    peers = [
        {
            "run": r["run"],
            "model": r["backbone"],
            "auc": fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"]),
        }
        for _, r in every[every["family"] == "peer"].iterrows()
    ]
    method = every[every["family"] == "DFIG"]
    if "stopped_by" in method:  # a run its time budget stopped is never the method's result
        method = method[method["stopped_by"] != CUT_SHORT]
    return method, peers  # peers, the baseline and cut-short runs are rows only


def _best(models: pd.DataFrame | None) -> dict[str, Any] | None:
    """The method's run with the highest ROC-AUC (and its first mode-0 run), formatted; None without runs."""
    if models is None or not len(models):
        return None
    b = models.sort_values("roc_auc", ascending=False).iloc[0]
    best = {
        "run": b["run"],
        "auc": fmt_ci(b["roc_auc"], b["roc_auc_lo"], b["roc_auc_hi"]),
        "ap": fmt_ci(b["ap"], b["ap_lo"], b["ap_hi"]),
        "acc": fmt(b["test_acc"]),
    }
    m0 = models[models["run"].str.endswith("_mode0")]
    if len(m0):
        r = m0.iloc[0]
        best["mode0_run"] = r["run"]
        best["mode0_auc"] = fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"])
    return best


def peer_verdict(profile: str, best: dict[str, Any] | None) -> str:
    """One sentence from the models table: the fusion-mode-0 run against the best classical peer (test
    ROC-AUC, 95% intervals); "" when the profile has no mode-0 run or no peer."""
    every = _table("models", profile)
    if every is None or "family" not in every or not best or "mode0_run" not in best:
        return ""
    peers = every[every["family"] == "peer"].sort_values("roc_auc", ascending=False)
    if not len(peers):
        return ""
    p, m = peers.iloc[0], every[every["run"] == best["mode0_run"]].iloc[0]
    side = "above" if m["roc_auc"] > p["roc_auc"] else "below"
    ci = fmt_ci(p["roc_auc"], p["roc_auc_lo"], p["roc_auc_hi"])
    if m["roc_auc_lo"] > p["roc_auc_hi"] or m["roc_auc_hi"] < p["roc_auc_lo"]:
        how = "and the 95% intervals do not overlap"
    else:
        how = "but the 95% intervals overlap, so this test set does not separate them"
    gap = abs(m["roc_auc"] - p["roc_auc"])
    return (
        f"The fusion-mode-0 detector ({m['run']}, test ROC-AUC {best['mode0_auc']}) is {side} the best "
        f"classical peer ({p['backbone']}, {ci}) by {gap:.3f}, {how}."
    )


def _method_of(record: dict[str, Any], key: str) -> str:
    """The ``method`` of a stage record's ``segmenter``/``denoiser`` entry (a dict, or a plain name)."""
    v = record.get(key)
    return (v or {}).get("method", "unknown") if isinstance(v, dict) else str(record.get(key, "unknown"))


def _provenance(man: dict[str, Any], fallbacks: list[dict], standins: list[dict]) -> dict[str, Any]:
    """The provenance appendix: weights, fallbacks, stand-ins and notebook runs, formatted."""
    return {
        "weights": [
            {
                "name": w.get("name", ""),
                "file": w.get("file", ""),
                "status": w.get("state", ""),
                "sha256": (w.get("sha256") or "")[:16],
            }
            for w in man.get("weights", [])
            if "name" in w
        ],
        "fallbacks": [
            {
                "fallback": f["fallback"],
                "instead_of": f["instead_of"],
                "reason": f["reason"].split(". ")[0][:140],
                "used_in": ", ".join(f.get("used_in", [])),
            }
            for f in fallbacks
        ],
        "standins": [
            {
                "weights": str(s.get("weights") or ""),
                "file": str(s.get("file") or ""),
                "seed": str(s.get("seed")),
                "used_in": ", ".join(s["used_in"]),
            }
            for s in standins
        ],
        "runs": [
            {"run": e["run"], "seconds": fmt(e.get("seconds"), 0), "status": e.get("status", "")}
            for e in man.get("runs", [])
        ],
    }


#: the figures the paper shows (``curves_<run>`` is added for the best mode-0 run)
PAPER_FIGURES = (
    "feature_examples",
    "mean_spectra",
    "roc_pr",
    "confusion",
    "robustness",
    "segmentation_examples_faces",
    "lnp_examples_lnp",
)


def _figures(profile: str, best: dict[str, Any] | None) -> dict[str, str]:
    """The paper's figures that exist, by name: paths relative to ``reports/<profile>/``."""
    curves = f"curves_{best['mode0_run'] if best and 'mode0_run' in best else ''}"
    return {k: v for k in (*PAPER_FIGURES, curves) if (v := _fig(k, profile))}


def paper_data(profile: str) -> dict[str, Any]:
    """Everything the paper prints, formatted, from reports/<profile>/ (written to paper_data.json).

    Arguments: ``profile``. Returns the dict :func:`build_paper` saves as ``paper_data.json``.
    """
    man = manifest.read_manifest(profile)
    stages = manifest.stage_records(profile)
    train_meta = {
        p.stem[6:]: io.load_json(p) for p in sorted(paths.metrics_dir(profile).glob("train_*.json"))
    }
    records = {**stages, **{f"train {k}": v for k, v in train_meta.items()}}
    fallbacks, standins = manifest.fallbacks_used(records), manifest.standins_used(records)
    synthetic = any(r.get("synthetic") or (r.get("input") or {}).get("synthetic") for r in stages.values())
    models, peers = method_and_peers(profile)
    best = _best(models)
    den = stages.get("lnp", {})
    packages = ("python", "torch", "torch_build", "torchvision", "segment-anything", "papermill", "typst")
    return {
        "profile": profile,
        "banner": banner(profile, fallbacks, standins, cut_short_runs(train_meta)),
        "synthetic": synthetic,
        "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": man.get("git", {}).get("commit", "unknown")[:12],
        "dirty": man.get("git", {}).get("dirty", False),
        "device": man.get("device", {}),
        "packages": {k: v for k, v in man.get("packages", {}).items() if k in packages},
        "counts": recipe.counts_rows(man),
        "dirty_paths": man.get("git", {}).get("dirty_paths", []),
        "recipe": recipe.recipe_text(train_meta, stages),
        "denoiser_strength": recipe.denoiser_strength(den),
        "n_runs": len(train_meta),
        "total_minutes": fmt((man.get("total_seconds") or 0) / 60, 1),
        "segmenter": _method_of(stages.get("faces", {}), "segmenter"),
        "denoiser": _method_of(den, "denoiser"),
        "lnp_save_mode": den.get("save_mode", "unknown"),
        **_provenance(man, fallbacks, standins),
        "tables": format_tables(profile),
        "figures": _figures(profile, best),
        "best": best or {},
        "peers": peers,
        "verdict": peer_verdict(profile, best),
    }


def typst_inputs(profile_or_dir: str | Path) -> dict[str, str]:
    """What ``paper/main.typ`` reads at compile time (never written to a file): the absolute paths of
    ``paper_data.json`` and of the reports folder its figure paths are relative to.

    Arguments: a profile name or its reports folder. Returns: ``{"data", "reports"}``.
    """
    folder = profile_or_dir if isinstance(profile_or_dir, Path) else paths.reports_dir(profile_or_dir)
    folder = Path(folder).resolve()
    return {"data": str(folder / "paper_data.json"), "reports": str(folder)}


def build_paper(profile: str, publish: bool = False) -> Path:
    """Write paper_data.json and compile paper/main.typ to reports/<profile>/DFIG_v2.pdf (and publish)."""
    import typst

    data = paper_data(profile)
    data_path = paths.reports_dir(profile) / "paper_data.json"
    io.save_json(data, data_path, portable=True)
    io.record_provenance(data_path)
    pdf = paths.reports_dir(profile) / "DFIG_v2.pdf"
    # root "/" lets the paper read results wherever DFIG_REPORTS puts them (absolute paths)
    with io.atomic_path(pdf, suffix=".part.pdf") as tmp:
        typst.compile(
            str(paths.paper_dir() / "main.typ"),
            output=str(tmp),
            root="/",
            sys_inputs=typst_inputs(profile),
        )
    io.record_provenance(pdf)
    if publish:
        with io.atomic_path(paths.paper_pdf(), suffix=".part.pdf") as tmp:
            shutil.copyfile(pdf, tmp)
    return pdf


def preview_first_page(pdf: Path) -> Any:
    """The first page of the PDF as a PNG image (for the notebook), via typst's PNG export."""
    import typst
    from IPython.display import Image

    pages = typst.compile(
        str(paths.paper_dir() / "main.typ"),
        format="png",
        ppi=60,
        root="/",
        sys_inputs=typst_inputs(pdf.parent),
    )
    first = pages[0] if isinstance(pages, list) else pages
    return Image(data=first)


__all__ = [
    "CUT_SHORT",
    "cut_short_runs",
    "method_and_peers",
    "peer_verdict",
    "BANNERS",
    "PAPER_FIGURES",
    "TABLE_FORMATS",
    "WIDE",
    "banner",
    "build_paper",
    "epochs_cell",
    "typst_inputs",
    "fmt",
    "fmt_ci",
    "format_tables",
    "paper_data",
    "preview_first_page",
]
