"""Results never depend on the machine's speed: no time budget in the smoke and sample profiles, and a run
that a budget stopped is shown as cut short, never as the profile's result."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from dfig import paths
from dfig.report import paper


@pytest.mark.parametrize("name", ["smoke", "sample"])
def test_profiles_that_report_results_have_no_time_budget(name: str) -> None:
    prof = yaml.safe_load((paths.profiles_dir() / f"{name}.yaml").read_text())
    for run in prof["runs"]:
        for item in [run.get("params") or {}, *(run.get("grid") or [])]:
            assert "max_minutes" not in item, f"{name}: {run['notebook']} sets max_minutes"


def test_a_run_stopped_by_its_time_budget_is_named_cut_short() -> None:
    meta = {"a_mode0": {"stopped_by": "epochs"}, "b_mode1": {"stopped_by": "max_minutes"}}
    assert paper.cut_short_runs(meta) == ["b_mode1"]
    text = paper.banner("sample", [], [], paper.cut_short_runs(meta))
    assert "CUT SHORT - b_mode1" in text and "a_mode0" not in text
    row = pd.Series({"family": "DFIG", "epochs": 2, "best_epoch": 2, "stopped_by": "max_minutes"})
    assert paper.epochs_cell(row) == "2 (best 2; CUT SHORT by max_minutes)"


def test_a_cut_short_run_is_never_the_methods_best(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DFIG_REPORTS", str(tmp_path))
    cols = dict(family="DFIG", backbone="MobileNetV2", roc_auc_lo=0.0, roc_auc_hi=1.0, ap=0.5, ap_lo=0.0,
                ap_hi=1.0, test_acc=0.5)  # fmt: skip
    models = pd.DataFrame(
        [
            {"run": "mobilev2_mode0", "roc_auc": 0.6, "stopped_by": "epochs", **cols},
            {"run": "mobilev2_mode1", "roc_auc": 0.9, "stopped_by": "max_minutes", **cols},
        ]
    )
    paths.tables_dir("sample").mkdir(parents=True)
    models.to_csv(paths.tables_dir("sample") / "models.csv", index=False)
    method, _ = paper.method_and_peers("sample")
    assert list(method["run"]) == ["mobilev2_mode0"]
