"""Rebuild the paper (``DFIG_v2.pdf``) from a profile's regenerated results.

:func:`paper_data` reads the tables (CSV), figures, metrics and manifest of ``reports/<profile>/``
and writes ``reports/<profile>/paper_data.json``: every number the paper prints, already formatted.
``paper/main.typ`` reads only that file (Typst ``json``) and the figures, so no number is typed into
the paper source. :func:`build_paper` compiles it with the ``typst`` Python package.
"""

from __future__ import annotations

import math
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dfig import io, paths
from dfig.report import manifest
from dfig.report.evaluate import BACKBONE_NAMES

BANNERS = {
    "smoke": "SMOKE PROFILE - SYNTHETIC DATA. This PDF was built from the generated two-class synthetic set "
    "(no real faces). Its numbers test the pipeline, not the method.",
    "sample": "SAMPLE PROFILE - a 1,000-image real face sample (FFHQ + StyleGAN), CPU training from scratch. "
    "Not the paper's setting: numbers are not comparable to the reported ones.",
    "paper-standin": "PAPER-STANDIN PROFILE - the paper profile's settings on the face sample with random "
    "stand-in weights and a short training budget: a test of every code path, not a result.",
    "paper-standin-cpu": "PAPER-STANDIN-CPU PROFILE - the CI check of paper-standin on a CPU (SAM vit_b, six photos, "
    "stand-in weights): a test of the code paths, not a result.",
}


def banner(profile: str, fallbacks: list[dict[str, Any]], standins: list[dict[str, Any]]) -> str:
    """The page-1 banner: the profile's line, then stand-in weights and fallbacks when any were used.

    Arguments: the profile name, the merged fallback and stand-in records (:mod:`dfig.report.manifest`).
    Returns ``""`` when there is nothing to warn about (the paper profile with official files).
    """
    parts = [BANNERS.get(profile, "")]
    if standins:
        names = ", ".join(sorted({str(s.get("weights") or s.get("file")) for s in standins}))
        parts.append(
            f"STAND-IN WEIGHTS - {names}: random weights in the official formats were used instead "
            "of the official checkpoints, so every number in this PDF is meaningless."
        )
    if fallbacks and profile != "paper":
        parts.append("Fallbacks were used (see the provenance appendix).")
    return " ".join(p for p in parts if p)


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
    return str(p.resolve()) if p.exists() else None  # typst runs with root "/" (see build_paper)


def format_tables(profile: str) -> dict[str, dict[str, Any]]:
    """Each result table as {caption, header, rows} of strings, ready for the paper."""
    out: dict[str, dict[str, Any]] = {}
    df = _table("models", profile)
    if df is not None:
        out["models"] = {
            "header": [
                "run",
                "family",
                "acc",
                "real acc",
                "fake acc",
                "AP [95% CI]",
                "ROC-AUC [95% CI]",
                "EER",
                "acc @ val thr",
                "epochs",
                "min",
            ],
            "rows": [
                [
                    r["run"],
                    r.get("family", "DFIG"),
                    fmt(r["test_acc"]),
                    fmt(r["real_acc"]),
                    fmt(r["fake_acc"]),
                    fmt_ci(r["ap"], r["ap_lo"], r["ap_hi"]),
                    fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"]),
                    fmt(r["eer"]),
                    fmt(r["test_acc_at_val_threshold"]),
                    fmt(r["epochs"], 0),
                    fmt(r["train_minutes"], 1),
                ]
                for _, r in df.iterrows()
            ],
        }
    df = _table("table1_2_backbones", profile)
    if df is not None:
        out["table1_2_backbones"] = {
            "header": [
                "backbone",
                "val acc %",
                "val acc % (rep.)",
                "test acc %",
                "test acc % (rep.)",
                "test AUC",
                "test AP",
                "train min",
                "train h (rep.)",
            ],
            "rows": [
                [
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
                for _, r in df.iterrows()
            ],
        }
    for key in ("table4_sam", "table5_spectra", "table6_fusion"):
        df = _table(key, profile)
        if df is None:
            continue
        header = ["variant"]
        for name in BACKBONE_NAMES.values():
            header += [f"{name}: ours", f"{name}: rep."]
        rows = []
        for _, r in df.iterrows():
            row = [r["variant"]]
            for name in BACKBONE_NAMES.values():
                acc, auc = r[f"{name} acc"], r[f"{name} AUC"]
                row += [
                    "-" if pd.isna(acc) else f"{fmt(acc, 2)} ({fmt(auc)})",
                    fmt(r[f"{name} reported acc"], 2),
                ]
            rows.append(row)
        out[key] = {"header": header, "rows": rows}
    for key in ("ablation_inputs", "ablation_lnp_save"):
        df = _table(key, profile)
        if df is not None and len(df):
            out[key] = {
                "header": ["input", "run", "test acc %", "AP", "ROC-AUC [95% CI]"],
                "rows": [
                    [
                        r["input"],
                        r["run"],
                        fmt(r["test_acc"], 2),
                        fmt(r["ap"]),
                        fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"]),
                    ]
                    for _, r in df.iterrows()
                ],
            }
    df = _table("robustness", profile)
    if df is not None and len(df):
        out["robustness"] = {
            "header": ["perturbation (before feature extraction)", "n", "acc", "AP", "ROC-AUC"],
            "rows": [
                [r["perturbation"], fmt(r.get("n"), 0), fmt(r["acc"]), fmt(r["ap"]), fmt(r["roc_auc"])]
                for _, r in df.iterrows()
            ],
        }
    df = _table("cross_generator", profile)
    if df is not None and len(df):
        out["cross_generator"] = {
            "header": ["test folder", "history", "n", "acc", "AP", "ROC-AUC"],
            "rows": [
                [
                    r["test_folder"],
                    str(r.get("history", "-")),
                    fmt(r["n"], 0),
                    fmt(r["acc"]),
                    fmt(r["ap"]),
                    fmt(r["roc_auc"]),
                ]
                for _, r in df.iterrows()
            ],
        }
    for key, t in out.items():
        t["caption"] = _caption(key, profile)
    return out


def _counts(man: dict[str, Any]) -> list[list[str]]:
    dc = man.get("data_counts", {})
    src = dc.get("raw") or next(iter(dc.values()), {})
    rows = []
    for split in ("train", "val", "test"):
        c = src.get(split, {}) if isinstance(src, dict) else {}
        if c:
            rows.append([split, str(c.get("real", "-")), str(c.get("fake", "-"))])
    return rows


def paper_data(profile: str) -> dict[str, Any]:
    """Everything the paper prints, formatted, from reports/<profile>/ (written to paper_data.json)."""
    man = manifest.read_manifest(profile)
    stages = manifest.stage_records(profile)
    train_meta = {
        p.stem[6:]: io.load_json(p) for p in sorted(paths.metrics_dir(profile).glob("train_*.json"))
    }
    fallbacks = manifest.fallbacks_used({**stages, **{f"train {k}": v for k, v in train_meta.items()}})
    standins = manifest.standins_used({**stages, **{f"train {k}": v for k, v in train_meta.items()}})
    synthetic = any(r.get("synthetic") or (r.get("input") or {}).get("synthetic") for r in stages.values())
    every = _table("models", profile)
    models, peers = every, []
    if every is not None and "family" in every:
        models = every[every["family"] == "DFIG"]  # the method; peers and the baseline are rows only
        peers = [
            {
                "run": r["run"],
                "model": r["backbone"],
                "auc": fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"]),
            }
            for _, r in every[every["family"] == "peer"].iterrows()
        ]
    best = None
    if models is not None and len(models):
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
    seg = stages.get("faces", {})
    den = stages.get("lnp", {})
    data = {
        "profile": profile,
        "banner": banner(profile, fallbacks, standins),
        "synthetic": synthetic,
        "built": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": man.get("git", {}).get("commit", "unknown")[:12],
        "dirty": man.get("git", {}).get("dirty", False),
        "device": man.get("device", {}),
        "packages": {
            k: v
            for k, v in man.get("packages", {}).items()
            if k in ("python", "torch", "torchvision", "segment-anything", "papermill", "typst")
        },
        "counts": _counts(man),
        "n_runs": len(train_meta),
        "total_minutes": fmt((man.get("total_seconds") or 0) / 60, 1),
        "segmenter": (seg.get("segmenter") or {}).get("method", "unknown")
        if isinstance(seg.get("segmenter"), dict)
        else str(seg.get("segmenter", "unknown")),
        "denoiser": (den.get("denoiser") or {}).get("method", "unknown")
        if isinstance(den.get("denoiser"), dict)
        else str(den.get("denoiser", "unknown")),
        "lnp_save_mode": den.get("save_mode", "unknown"),
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
        "tables": format_tables(profile),
        "figures": {
            k: v
            for k in (
                "feature_examples",
                "mean_spectra",
                "roc_pr",
                "confusion",
                "robustness",
                "segmentation_examples_faces",
                "lnp_examples_lnp",
                f"curves_{best['mode0_run'] if best and 'mode0_run' in best else ''}",
            )
            if (v := _fig(k, profile))
        },
        "best": best or {},
        "peers": peers,
    }
    return data


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
            sys_inputs={"data": str(data_path.resolve())},
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

    data_path = str((pdf.parent / "paper_data.json").resolve())
    pages = typst.compile(
        str(paths.paper_dir() / "main.typ"), format="png", ppi=60, root="/", sys_inputs={"data": data_path}
    )
    first = pages[0] if isinstance(pages, list) else pages
    return Image(data=first)


__all__ = [
    "BANNERS",
    "banner",
    "build_paper",
    "fmt",
    "fmt_ci",
    "format_tables",
    "paper_data",
    "preview_first_page",
]
