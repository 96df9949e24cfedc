"""The evaluation's tables: the models table (metrics with bootstrap intervals) and the paper's tables.

Built from the runs :func:`dfig.report.evaluate.load_runs` reads; each table is returned as
``(DataFrame, caption)``. Values the original paper reported come from ``paper/reported.yaml`` and sit
in columns whose names start with ``reported``. Every public name here is also importable from
:mod:`dfig.report.evaluate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from dfig import paths
from dfig.core.metrics import bootstrap_ci, compute_metrics
from dfig.core.models.backbones import BACKBONE_NAMES

if TYPE_CHECKING:
    from dfig.report.runs import Run

#: run families, in table order: the method, its plain-RGB baseline, the classical peers
FAMILIES = ("DFIG", "baseline", "peer")


def reported() -> dict[str, Any]:
    """The values the original paper reported (paper/reported.yaml)."""
    with open(paths.paper_dir() / "reported.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def _row(run: Run, n_boot: int, seed: int) -> dict[str, Any]:
    y, p = run.test["label"].to_numpy(), run.test["p_fake"].to_numpy()
    m = compute_metrics(y, p, 0.5)
    mv = run.metrics("val", 0.5)
    m_thr = compute_metrics(y, p, run.threshold)
    row: dict[str, Any] = {
        "run": run.name,
        "family": run.family,
        "backbone": run.display_name,
        "mode": run.mode,
        "features": run.meta.get("features", ""),
        "spectra_channels": run.meta.get("spectra_channels", 1) if run.family != "peer" else None,
        "val_acc": mv["acc"],
        "test_acc": m["acc"],
        "real_acc": m["real_acc"],
        "fake_acc": m["fake_acc"],
    }
    for metric in ("ap", "roc_auc"):
        point, lo, hi = bootstrap_ci(y, p, metric=metric, n_boot=n_boot, seed=seed)
        row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = point, lo, hi
    row.update(
        {
            "eer": m["eer"],
            "val_threshold": run.threshold,
            "test_acc_at_val_threshold": m_thr["acc"],
            "epochs": run.meta.get("epochs"),
            "best_epoch": run.meta.get("best_epoch"),
            "stopped_by": run.meta.get("stopped_by", "n/a" if run.family == "peer" else ""),
            "train_minutes": run.meta.get("train_minutes"),
            "n_test": len(y),
            "pretrained": run.meta.get("pretrained_used", ""),
        }
    )
    return row


def models_table(runs: dict[str, Run], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per run: family, accuracy, real/fake accuracy, AP and ROC-AUC with 95% bootstrap CI, EER.

    Arguments: ``runs`` from :func:`load_runs`; ``n_boot``/``seed`` of the intervals. Returns the rows
    ordered by family (:data:`FAMILIES`: DFIG, baseline, peers), then as given.
    """
    order = sorted(runs.values(), key=lambda r: FAMILIES.index(r.family))
    return pd.DataFrame([_row(r, n_boot, seed) for r in order])


def _find(models: pd.DataFrame, run: str) -> pd.Series | None:
    sel = models[models["run"] == run]
    return sel.iloc[0] if len(sel) else None


def _pct(x: Any) -> float:
    return float("nan") if x is None or pd.isna(x) else round(100.0 * float(x), 2)


def _ours(models: pd.DataFrame, run: str, split: str = "test") -> dict[str, float]:
    r = _find(models, run)
    if r is None:
        return {"acc": float("nan"), "auc": float("nan"), "ap": float("nan")}
    return {"acc": _pct(r[f"{split}_acc"]), "auc": float(r["roc_auc"]), "ap": float(r["ap"])}


def backbone_table(models: pd.DataFrame, rep: dict[str, Any]) -> pd.DataFrame:
    """Tables 1 and 2: val and test accuracy and training time per backbone (fusion mode 0)."""
    rows = []
    for arch, label in BACKBONE_NAMES.items():
        r = _find(models, f"{arch}_mode0")
        rows.append(
            {
                "backbone": label,
                "val_acc": _pct(r["val_acc"]) if r is not None else float("nan"),
                "test_acc": _pct(r["test_acc"]) if r is not None else float("nan"),
                "test_auc": float(r["roc_auc"]) if r is not None else float("nan"),
                "test_ap": float(r["ap"]) if r is not None else float("nan"),
                "train_minutes": float(r["train_minutes"])
                if r is not None and r["train_minutes"] is not None
                else float("nan"),
                "reported_val_acc": rep["table1_val"][arch],
                "reported_test_acc": rep["table2_test"][arch],
                "reported_hours": rep["table1_hours"][arch],
            }
        )
    return pd.DataFrame(rows)


def _pair_table(
    models: pd.DataFrame, rep_pair: dict[str, dict[str, float]], variants: list[tuple[str, str, str]]
) -> pd.DataFrame:
    """Rows = variants (label, run suffix per arch, reported key); columns per backbone: ours + reported."""
    rows = []
    for label, suffix, rep_key in variants:
        row: dict[str, Any] = {"variant": label}
        for arch, name in BACKBONE_NAMES.items():
            o = _ours(models, f"{arch}_{suffix}")
            row[f"{name} acc"] = o["acc"]
            row[f"{name} AUC"] = o["auc"]
            row[f"{name} reported acc"] = rep_pair[rep_key][arch]
        rows.append(row)
    return pd.DataFrame(rows)


def _ablation(models: pd.DataFrame, variants: list[tuple[str, str]]) -> pd.DataFrame:
    rows = []
    for label, run in variants:
        r = _find(models, run)
        if r is None:
            continue
        rows.append(
            {
                "input": label,
                "run": run,
                "test_acc": _pct(r["test_acc"]),
                "ap": r["ap"],
                "roc_auc": r["roc_auc"],
                "roc_auc_lo": r["roc_auc_lo"],
                "roc_auc_hi": r["roc_auc_hi"],
            }
        )
    return pd.DataFrame(
        rows, columns=["input", "run", "test_acc", "ap", "roc_auc", "roc_auc_lo", "roc_auc_hi"]
    )


#: the run tags of the input and save-mode ablations (``<arch>_<tag>``), shown for one backbone
ABLATION_TAGS = ("rgb", "lnponly", "speconly", "clean", "compat")


def main_backbone(models: pd.DataFrame) -> str:
    """The backbone the ablation tables show: the one with the most ablation runs (``ABLATION_TAGS``).

    Ties go to the first of mobilev2, res50, res34 with a mode-0 run (e.g. the paper profile trains every
    backbone in mode 0 but runs its ablations on res50). Returns: the arch name (mobilev2 when none).
    """
    archs = ("mobilev2", "res50", "res34")
    count = {a: sum(_find(models, f"{a}_{t}") is not None for t in ABLATION_TAGS) for a in archs}
    has_mode0 = {a: _find(models, f"{a}_mode0") is not None for a in archs}
    best = max(archs, key=lambda a: (count[a], has_mode0[a], -archs.index(a)))
    return best if count[best] or has_mode0[best] else "mobilev2"


#: the paper's pair tables: key -> (reported.yaml key, variants (label, run suffix, reported key), caption)
PAIR_TABLES: dict[str, tuple[str, list[tuple[str, str, str]], str]] = {
    "table4_sam": (
        "table4_sam",
        [("without SAM", "nosam", "without"), ("with SAM", "mode0", "with")],
        "Table 4: test accuracy (%) without / with the segmentation step",
    ),
    "table5_spectra": (
        "table5_spectra_channels",
        [("3-channel spectra", "spec3ch", "three"), ("1-channel spectra", "mode0", "one")],
        "Table 5: spectra per colour channel vs averaged (test accuracy %)",
    ),
    "table6_fusion": (
        "table6_fusion",
        [
            ("AS+PS+LNP (mode 2)", "mode2", "mode2"),
            ("Att(AS+PS+LNP) (mode 1)", "mode1", "mode1"),
            ("Att(AS+PS)+LNP (mode 0)", "mode0", "mode0"),
        ],
        "Table 6: fusion modes (test accuracy %)",
    ),
}


def build_ablation_tables(models: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str]]:
    """The input and LNP-save-mode ablations, for the backbone :func:`main_backbone` picks."""
    a = main_backbone(models)
    A = BACKBONE_NAMES[a]
    inputs = [
        ("RGB face (no LNP)", f"{a}_rgb"),
        ("LNP only", f"{a}_lnponly"),
        ("spectra only", f"{a}_speconly"),
        ("LNP + spectra, mode 0", f"{a}_mode0"),
    ]
    # the mode-0 run stands for whichever save mode has no run of its own (paper: compat; sample: clean)
    has = {tag: _find(models, f"{a}_{tag}") is not None for tag in ("compat", "clean")}
    save = [
        ("compat (original PNG arithmetic)", f"{a}_compat" if has["compat"] else f"{a}_mode0"),
        ("clean (signed float16)", f"{a}_clean" if has["clean"] or not has["compat"] else f"{a}_mode0"),
    ]
    return {
        "ablation_inputs": (_ablation(models, inputs), f"Our ablation ({A}): what the detector is given"),
        "ablation_lnp_save": (_ablation(models, save), f"Our ablation ({A}, mode 0): LNP save mode"),
    }


#: the paper's Table 3 (comparison with earlier methods): reported method -> (the run tag or peer run that
#: implements it here, what that run is). ``None``: the compendium has no run of that method.
TABLE3_METHODS: dict[str, tuple[str | None, str]] = {
    "AutoGAN-Spec (2019)": (
        "speconly",
        "a CNN on spectra only (the LNP's amplitude and phase; AutoGAN-Spec feeds the image's log spectrum)",
    ),
    "DCT-CNN (2020)": (
        "peer_logreg_dct",
        "Frank et al.: log |DCT| of the grey photo, standardised per coefficient, logistic regression",
    ),
    "Wang et al. (2020)": ("cnndet", "CNNDetection: ResNet-50 on the RGB photo, blur + JPEG augmentation"),
    "Gragnaniello et al. (2021)": (None, "not in the compendium (ResNet-50 without early down-sampling)"),
    "Liu et al. LNP (2022)": ("lnponly", "the LNP alone (no spectra) into the same backbone"),
    "DFIG": ("mode0", "DFIG, fusion mode 0"),
}
#: what Table 3 says of a row whose run the profile did not train
NOT_TRAINED = "not trained by this profile"


def _table3_run(models: pd.DataFrame, key: str | None, arch: str) -> pd.Series | None:
    """The models-table row implementing a Table 3 method: a peer by name, else ``<arch>_<tag>``, else
    the first run of any backbone with that tag."""
    if key is None:
        return None
    if key.startswith("peer_"):
        return _find(models, key)
    hit = _find(models, f"{arch}_{key}")
    if hit is not None:
        return hit
    sel = models[models["run"].str.endswith(f"_{key}")]
    return sel.iloc[0] if len(sel) else None


def table3_comparison(models: pd.DataFrame, rep: dict[str, Any]) -> pd.DataFrame:
    """The paper's Table 3 beside the reported accuracies: which of our runs implements each method.

    Arguments: the models table; ``rep`` (:func:`reported`). Returns one row per reported method:
    ``method, reported_acc, run`` (or :data:`NOT_TRAINED`), ``what`` (what our run is), ``trained``,
    ``test_acc`` (%), ``roc_auc`` with ``_lo``/``_hi`` (NaN where not trained).
    """
    arch, rows = main_backbone(models), []
    for item in rep["table3_comparison"]:
        key, what = TABLE3_METHODS.get(item["method"], (None, "not in the compendium"))
        r = _table3_run(models, key, arch)
        row = {"method": item["method"], "reported_acc": float(item["acc"]), "what": what}
        row.update({"run": NOT_TRAINED if r is None else r["run"], "trained": r is not None})
        for k in ("roc_auc", "roc_auc_lo", "roc_auc_hi"):
            row[k] = float("nan") if r is None else float(r[k])
        row["test_acc"] = float("nan") if r is None else _pct(r["test_acc"])
        rows.append(row)
    return pd.DataFrame(rows)


def build_tables(
    runs: dict[str, Run], n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[pd.DataFrame, str]]:
    """All tables of the evaluation notebook and the paper, keyed by file name.

    Arguments: ``runs`` from :func:`dfig.report.evaluate.load_runs`; ``n_boot``/``seed`` of the
    bootstrap intervals. Returns ``{name: (DataFrame, caption)}``: the models table, the paper's
    tables 1-6 (beside the reported values) and our ablations.
    """
    rep = reported()
    models = models_table(runs, n_boot, seed)
    t = {
        "models": (
            models,
            "All runs, test split: accuracy at 0.5, AP and ROC-AUC with 95% bootstrap CI, EER; "
            "family: DFIG (the method), baseline (RGB faces), peer (classical detector on the same splits)",
        ),
        "table1_2_backbones": (
            backbone_table(models, rep),
            "Tables 1-2: accuracy (%) per backbone, fusion mode 0; reported = original paper",
        ),
    }
    for key, (rep_key, variants, caption) in PAIR_TABLES.items():
        t[key] = (_pair_table(models, rep[rep_key], variants), caption)
    t["table3_comparison"] = (
        table3_comparison(models, rep),
        "Table 3: earlier methods, reported accuracy (%) beside our run of each (test accuracy %, ROC-AUC)",
    )
    t.update(build_ablation_tables(models))
    return t


def summary(runs: dict[str, Run], tables: dict[str, tuple[pd.DataFrame, str]]) -> dict[str, Any]:
    """A JSON-able summary: per-run test metrics with intervals."""
    models = tables["models"][0]
    return {
        "runs": {
            r["run"]: {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in models.to_dict("records")
        }
    }


__all__ = [
    "ABLATION_TAGS",
    "FAMILIES",
    "NOT_TRAINED",
    "PAIR_TABLES",
    "TABLE3_METHODS",
    "backbone_table",
    "build_ablation_tables",
    "build_tables",
    "main_backbone",
    "models_table",
    "reported",
    "summary",
    "table3_comparison",
]
