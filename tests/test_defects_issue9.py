"""Defects found while reading the library (issue 9, part 7): each test failed before its fix."""

from __future__ import annotations

import pandas as pd

from dfig.notebook import run_label
from dfig.report import evaluate


def _models(runs: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"run": runs, "acc": [0.5] * len(runs)})


def test_main_backbone_is_the_one_with_the_ablation_runs() -> None:
    # the paper profile: every backbone in mode 0, the ablations on ResNet-50
    paper = [
        "res50_mode0",
        "mobilev2_mode0",
        "res34_mode0",
        "res50_rgb",
        "res50_lnponly",
        "res50_speconly",
        "res50_clean",
        "mobilev2_spec3ch",
        "res50_nosam",
    ]
    assert evaluate.main_backbone(_models(paper)) == "res50"
    # the sample/smoke profiles: everything on MobileNetV2
    assert evaluate.main_backbone(_models(["mobilev2_mode0", "mobilev2_rgb", "res50_mode0"])) == "mobilev2"
    # no ablation run at all: the first backbone with a mode-0 run
    assert evaluate.main_backbone(_models(["res34_mode0"])) == "res34"
    assert evaluate.main_backbone(_models([])) == "mobilev2"


def test_provenance_keeps_the_run_name_that_run_all_set() -> None:
    assert run_label("04_train", "04_train__res50_mode0") == "04_train__res50_mode0"
    assert run_label("04_train", "04_train") == "04_train"
    assert run_label("04_train", "") == "04_train"
    assert run_label("05_evaluate", "04_train__res50_mode0") == "05_evaluate"  # a session that ran another
    assert run_label("04_train", "04_training_other") == "04_train"


def _save_rows(runs: list[str]) -> list[tuple[str, str]]:
    cols = {"test_acc": 0.5, "ap": 0.5, "roc_auc": 0.5, "roc_auc_lo": 0.4, "roc_auc_hi": 0.6}
    models = pd.DataFrame([{"run": r, **cols} for r in runs])
    table, _ = evaluate.build_ablation_tables(models)["ablation_lnp_save"]
    return [(row.input.split()[0], row.run) for row in table.itertuples()]


def test_save_mode_ablation_follows_which_mode_the_main_runs_use() -> None:
    # paper: the main runs are compat, the ablation run is clean
    assert _save_rows(["res50_mode0", "res50_clean", "res50_rgb"]) == [
        ("compat", "res50_mode0"),
        ("clean", "res50_clean"),
    ]
    # sample: the main runs are clean (the recipe chosen on val), the ablation run is compat
    assert _save_rows(["mobilev2_mode0", "mobilev2_compat"]) == [
        ("compat", "mobilev2_compat"),
        ("clean", "mobilev2_mode0"),
    ]
