"""Evaluation of a profile's training runs: metrics with bootstrap intervals and the paper's tables.

Every table is built from the per-run files the training notebook writes
(``reports/<profile>/metrics/train_<run>.json`` and ``predictions/<run>_{val,test}.csv``) and those
of the classical peers (``metrics/peer_<name>.json``, :mod:`dfig.stages.peers`), and is returned as
``(DataFrame, caption)``. Each run belongs to a family (:data:`FAMILIES`): the method, its plain-RGB
baseline, or a classical peer; peers are rows beside the method, never the method. Values the original paper reported come from
``paper/reported.yaml`` and sit in columns whose names start with ``reported``.

This module reads the runs (:class:`Run`, :func:`load_runs`), runs the peers, the robustness and the
cross-generator checks; the tables are built in :mod:`dfig.report.tables` and re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dfig import io, paths
from dfig.core.metrics import compute_metrics
from dfig.core.models.backbones import BACKBONE_NAMES  # noqa: F401 (dfig.report.paper imports it from here)
from dfig.report.runs import PEER_FEATURE_NAMES, PEER_MODEL_NAMES, Run
from dfig.report.tables import (
    ABLATION_TAGS,
    FAMILIES,
    NOT_TRAINED,
    PAIR_TABLES,
    TABLE3_METHODS,
    backbone_table,
    build_ablation_tables,
    build_tables,
    main_backbone,
    models_table,
    reported,
    summary,
    table3_comparison,
)

#: metrics files the evaluation reads (training runs, classical peers)
RUN_FILES = ("train_*.json", "peer_*.json")


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
    from dfig.stages.peers import build_peer

    photos = ctx.data_root() if any(build_peer(n).source == "photos" for n in names) else None
    return run_peers_like(names, meta, root, seed=seed, n_boot=n_boot, photo_root=photos)


__all__ = [
    "ABLATION_TAGS",
    "FAMILIES",
    "NOT_HARMONISED",
    "NOT_TRAINED",
    "PAIR_TABLES",
    "PEER_FEATURE_NAMES",
    "PEER_MODEL_NAMES",
    "RUN_FILES",
    "Run",
    "TABLE3_METHODS",
    "backbone_table",
    "build_ablation_tables",
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
    "table3_comparison",
]
