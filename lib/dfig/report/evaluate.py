"""Evaluation of a profile's training runs: metrics with bootstrap intervals and the paper's tables.

Every table is built from the per-run files the training notebook writes
(``reports/<profile>/metrics/train_<run>.json`` and ``predictions/<run>_{val,test}.csv``) and those
of the classical peers (``metrics/peer_<name>.json``, :mod:`dfig.stages.peers`), and is returned as
``(DataFrame, caption)``. Each run belongs to a family (:data:`FAMILIES`): the method, its plain-RGB
baseline, or a classical peer; peers are rows beside the method, never the method. Values the original paper reported come from
``paper/reported.yaml`` and sit in columns whose names start with ``reported``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dfig import io, paths
from dfig.core.metrics import bootstrap_ci, compute_metrics
from dfig.core.models.backbones import BACKBONE_NAMES

#: display names of the classical peers' models and features (``arch``/``features`` of ``peer_*.json``)
PEER_MODEL_NAMES = {"logreg": "logistic regression", "hgb": "gradient boosting"}
PEER_FEATURE_NAMES = {
    "spec2d": "2-D log spectrum",
    "spec1d": "1-D radial spectrum",
    "stats": "residual stats",
}
#: run families, in table order: the method, its plain-RGB baseline, the classical peers
FAMILIES = ("DFIG", "baseline", "peer")
#: metrics files the evaluation reads (training runs, classical peers)
RUN_FILES = ("train_*.json", "peer_*.json")


@dataclass
class Run:
    """One training run: its metrics JSON and its per-image predictions."""

    name: str
    meta: dict[str, Any]
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def mode(self) -> str:
        return str(self.meta["train_mode"])

    @property
    def tag(self) -> str:
        return str(self.meta.get("tag") or "")

    @property
    def family(self) -> str:
        """``peer`` (a classical peer), ``baseline`` (plain RGB faces, no LNP) or ``DFIG``."""
        if self.mode == "peer":
            return "peer"
        return "baseline" if self.meta.get("features") == "faces" or self.tag == "rgb" else "DFIG"

    @property
    def display_name(self) -> str:
        """The backbone (DFIG, baseline) or the model and its features (peer), for tables and legends."""
        if self.family != "peer":
            return BACKBONE_NAMES.get(self.arch, self.arch)
        feats = str(self.meta.get("features", ""))
        return f"{PEER_MODEL_NAMES.get(self.arch, self.arch)} ({PEER_FEATURE_NAMES.get(feats, feats)})"

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    def metrics(self, split: str = "test", threshold: float = 0.5) -> dict[str, float]:
        df = self.test if split == "test" else self.val
        return compute_metrics(df["label"].to_numpy(), df["p_fake"].to_numpy(), threshold)


def load_runs(profile: str) -> dict[str, Run]:
    """All runs of a profile (training runs, then classical peers), by run name.

    Arguments: ``profile``. Returns ``{name: Run}`` for every ``metrics/{train,peer}_*.json`` whose
    predictions exist (training runs sorted, then peers sorted). Raises FileNotFoundError when none.
    """
    mdir, pdir = paths.metrics_dir(profile), paths.predictions_dir(profile)
    runs = {}
    for f in [f for pattern in RUN_FILES for f in sorted(mdir.glob(pattern))]:
        meta = io.load_json(f)
        name = meta["name"]
        try:
            val = pd.read_csv(pdir / f"{name}_val.csv")
            test = pd.read_csv(pdir / f"{name}_test.csv")
        except FileNotFoundError:
            continue
        runs[name] = Run(name, meta, val, test)
    if not runs:
        raise FileNotFoundError(
            f"no training runs in {mdir}: run notebooks/04_train.ipynb first "
            f"(or `python run_all.py --profile {profile}`)"
        )
    return runs


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
ABLATION_TAGS = ("rgb", "lnponly", "speconly", "clean")


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


def build_tables(
    runs: dict[str, Run], n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[pd.DataFrame, str]]:
    """All tables of the evaluation notebook and the paper, keyed by file name."""
    rep = reported()
    models = models_table(runs, n_boot, seed)
    a = main_backbone(models)
    A = BACKBONE_NAMES[a]
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
        "table4_sam": (
            _pair_table(
                models,
                rep["table4_sam"],
                [("without SAM", "nosam", "without"), ("with SAM", "mode0", "with")],
            ),
            "Table 4: test accuracy (%) without / with the segmentation step",
        ),
        "table5_spectra": (
            _pair_table(
                models,
                rep["table5_spectra_channels"],
                [("3-channel spectra", "spec3ch", "three"), ("1-channel spectra", "mode0", "one")],
            ),
            "Table 5: spectra per colour channel vs averaged (test accuracy %)",
        ),
        "table6_fusion": (
            _pair_table(
                models,
                rep["table6_fusion"],
                [
                    ("AS+PS+LNP (mode 2)", "mode2", "mode2"),
                    ("Att(AS+PS+LNP) (mode 1)", "mode1", "mode1"),
                    ("Att(AS+PS)+LNP (mode 0)", "mode0", "mode0"),
                ],
            ),
            "Table 6: fusion modes (test accuracy %)",
        ),
        "ablation_inputs": (
            _ablation(
                models,
                [
                    ("RGB face (no LNP)", f"{a}_rgb"),
                    ("LNP only", f"{a}_lnponly"),
                    ("spectra only", f"{a}_speconly"),
                    ("LNP + spectra, mode 0", f"{a}_mode0"),
                ],
            ),
            f"Our ablation ({A}): what the detector is given",
        ),
        "ablation_lnp_save": (
            _ablation(
                models,
                [
                    ("compat (original PNG arithmetic)", f"{a}_mode0"),
                    ("clean (signed float16)", f"{a}_clean"),
                ],
            ),
            f"Our ablation ({A}, mode 0): LNP save mode",
        ),
    }
    return t


def robustness_table(ctx: Any, run: str, max_images: int = 200) -> pd.DataFrame | None:
    """Metrics of one run's best checkpoint under perturbations applied to the raw test photos."""
    if not run:
        return None
    ckpt = paths.checkpoints_dir(ctx.profile) / run / "model_epoch_best.pth"
    if not ckpt.exists():
        print(f"robustness skipped: {ckpt} not found (run 04_train for {run})")
        return None
    from dfig.stages.robustness import evaluate_robustness

    limit = max(1, max_images // 2) if max_images else None  # per class
    rob = evaluate_robustness(
        ckpt,
        ctx.data_root(),
        split="test",
        limit=limit,
        device=ctx.device,
        seed=int(ctx.params.get("seed", 0)),
        progress=True,
    )
    pred = paths.predictions_dir(ctx.profile) / f"{run}_test.csv"
    if pred.exists():
        print(compare_with_feature_files(rob, pd.read_csv(pred)))
    return rob


def compare_with_feature_files(rob: pd.DataFrame, test_pred: pd.DataFrame, tol: float = 1e-3) -> str:
    """Check the robustness table's ``none`` row against the training run's own test predictions.

    The ``none`` row runs the raw test photos through the feature pipeline rebuilt from the checkpoint;
    the models table reads the feature files. On the same images the scores must agree.

    Arguments: ``rob`` (from :func:`dfig.stages.robustness.evaluate_robustness`, with
    ``attrs["reference_scores"]``), ``test_pred`` (``predictions/<run>_test.csv``), ``tol`` (largest
    allowed score difference; GPU kernels and batch sizes move scores by ~1e-6). Returns: a one-line
    summary (images compared, out of how many, largest difference); when a score differs by more than
    ``tol`` the line says so and a ``RuntimeWarning`` is issued (the table is kept, for inspection).
    """
    ref = rob.attrs.get("reference_scores")
    if ref is None or not len(ref):
        return "robustness: no unperturbed row to compare with the models table"

    def key(p: str) -> tuple[str, str]:  # class folder and file stem: raw photo <-> its feature file
        return Path(p).parent.name, Path(p).stem

    files = dict(zip(map(key, test_pred["path"]), test_pred["p_fake"]))
    diffs = {p: abs(files[key(p)] - s) for p, s in zip(ref["path"], ref["p_fake"]) if key(p) in files}
    worst = max(diffs.values(), default=float("nan"))
    if diffs and worst > tol:
        import warnings

        bad = max(diffs, key=diffs.get)
        msg = (
            f"robustness 'none' row: the raw-photo score of {bad} differs from its feature file's by "
            f"{worst:.3g}: the rebuilt feature pipeline does not reproduce the training features"
        )
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return msg
    subset = (
        "the same images as the models table"
        if len(diffs) == len(test_pred)
        else f"{len(diffs)} of the models table's {len(test_pred)} test images (robustness_max_images)"
    )
    return (
        f"robustness 'none' row: {subset}; raw-photo scores equal the feature files' "
        f"(largest difference {worst:.1e})"
    )


def cross_generator_table(ctx: Any, run: str, test_dirs: list[str]) -> pd.DataFrame | None:
    """Metrics of one run on extra raw test folders ({real,fake}/*) of other generators.

    Arguments: ``ctx`` the notebook context; ``run`` the run's name; ``test_dirs`` the folders (e.g.
    written by ``python -m dfig.data.harmonize``). Returns one row per folder (``None`` without folders
    or run); its ``history`` says how the folder was harmonised (:func:`dfig.data.harmonize.harmonize_note`)
    or that it was not, since format and JPEG history alone can separate the classes.
    """
    if not test_dirs or not run:
        return None
    from dfig.data.harmonize import harmonize_note
    from dfig.stages.predict import predict_folder

    ckpt = paths.checkpoints_dir(ctx.profile) / run / "model_epoch_best.pth"
    rows = []
    for d in test_dirs:
        df = predict_folder(ckpt, Path(d), raw=True, device=ctx.device)
        m = compute_metrics(df["true_label"].to_numpy(), df["p_fake"].to_numpy(), 0.5)
        rows.append(
            {
                "test_folder": Path(d).name,
                "history": harmonize_note(d) or NOT_HARMONISED,
                "n": len(df),
                "acc": m["acc"],
                "ap": m["ap"],
                "roc_auc": m["roc_auc"],
            }
        )
    return pd.DataFrame(rows)


#: the ``history`` of a cross-generator folder that :mod:`dfig.data.harmonize` did not write
NOT_HARMONISED = "as found (not harmonised: real and fake may differ in size, format, JPEG history)"


def run_peers(ctx: Any, names: list[str], like: str, n_boot: int = 1000) -> list[dict[str, Any]]:
    """Train and evaluate the classical peers ``names`` on the splits, feature tree and region of run ``like``.

    Arguments: ``ctx`` the notebook context (profile, seed); ``names`` peers of
    :data:`dfig.stages.peers.PEERS` (empty: nothing runs); ``like`` a DFIG run of this profile whose
    ``train_<like>.json`` gives the feature tree (``features``), classes and central region
    (:func:`dfig.stages.peers.options_like`); ``n_boot`` bootstrap resamples. Writes
    ``metrics/peer_<name>.json`` and ``predictions/peer_<name>_{val,test}.csv``, which
    :func:`load_runs` reads. Returns the metrics dicts written.
    """
    if not names:
        return []
    from dfig.stages.peers import run_peers_like

    f = paths.metrics_dir(ctx.profile) / f"train_{like}.json"
    if not like or not f.exists():
        raise FileNotFoundError(
            f"{f}: no training run {like!r} to take the peers' features from: set peers_like to a "
            "trained run of this profile (04_train), or peers = [] to skip the peers"
        )
    meta = io.load_json(f)
    feats = str(meta.get("features") or "lnp")
    root = ctx.require(feats, made_by="02_lnp" if feats.startswith("lnp") else "01_segmentation")
    seed = int(ctx.params.get("seed", 0))
    return run_peers_like(names, meta, root, seed=seed, n_boot=n_boot)


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
    "NOT_HARMONISED",
    "PEER_FEATURE_NAMES",
    "PEER_MODEL_NAMES",
    "RUN_FILES",
    "Run",
    "backbone_table",
    "build_tables",
    "compare_with_feature_files",
    "cross_generator_table",
    "load_runs",
    "main_backbone",
    "models_table",
    "reported",
    "robustness_table",
    "run_peers",
    "summary",
]
