"""The paper builds from regenerated results, and the numbers it prints are the ones in reports/."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dfig import io, paths
from dfig.report import evaluate, paper

RUNS = [
    "mobilev2_mode0",
    "mobilev2_mode1",
    "mobilev2_mode2",
    "mobilev2_nosam",
    "mobilev2_spec3ch",
    "mobilev2_rgb",
    "mobilev2_clean",
]


def _fake_results(profile: str) -> None:
    """Write what 04_train writes for a few runs: predictions CSVs and train_<run>.json."""
    rng = np.random.default_rng(0)
    for i, run in enumerate(RUNS):
        for split in ("val", "test"):
            y = np.repeat([0, 1], 40)
            p = np.clip(0.5 + (y - 0.5) * (0.2 + 0.05 * i) + rng.normal(0, 0.25, y.size), 0, 1)
            df = pd.DataFrame(
                {
                    "path": [f"{split}/{k}.png" for k in range(y.size)],
                    "label": y,
                    "p_fake": p,
                    "pred": (p >= 0.5).astype(int),
                }
            )
            dest = paths.predictions_dir(profile) / f"{run}_{split}.csv"
            dest.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(dest, index=False)
        mode = run.split("_")[1].replace("mode", "") if "mode" in run else "0"
        io.save_metrics(
            {
                "name": run,
                "arch": "mobilev2",
                "train_mode": mode,
                "tag": "",
                "features": "lnp",
                "epochs": 3,
                "best_epoch": 2,
                "stopped_by": "epochs",
                "train_minutes": 1.5,
                "threshold": 0.5,
            },
            f"train_{run}",
        )


@pytest.fixture()
def built(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DFIG_PROFILE", "sample")
    _fake_results("sample")
    runs = evaluate.load_runs("sample")
    for key, (df, cap) in evaluate.build_tables(runs, n_boot=200, seed=0).items():
        io.save_table(df, key, caption=cap)
    pdf = paper.build_paper("sample", publish=False)
    return runs, pdf


def test_tables_hold_reported_values_beside_ours(built) -> None:
    t6 = pd.read_csv(paths.tables_dir("sample") / "table6_fusion.csv")
    rep = evaluate.reported()
    assert (
        t6.loc[t6["variant"].str.contains("mode 0"), "ResNet-50 reported acc"].item()
        == rep["table6_fusion"]["mode0"]["res50"]
    )
    # our MobileNetV2 mode-0 accuracy equals the accuracy computed from its predictions
    runs, _ = built
    ours = t6.loc[t6["variant"].str.contains("mode 0"), "MobileNetV2 acc"].item()
    assert ours == pytest.approx(100 * runs["mobilev2_mode0"].metrics("test")["acc"], abs=0.01)
    assert np.isnan(t6.loc[0, "ResNet-50 acc"]), "a backbone this profile did not train stays empty"


def test_pdf_prints_the_numbers_of_the_results_files(built) -> None:
    from pypdf import PdfReader

    _, pdf = built
    assert pdf.exists() and pdf.stat().st_size > 10_000
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    text = " ".join(text.split())
    data = io.load_json(paths.reports_dir("sample") / "paper_data.json")
    models = pd.read_csv(paths.tables_dir("sample") / "models.csv")
    r = models.set_index("run").loc["mobilev2_mode0"]
    auc = paper.fmt_ci(r["roc_auc"], r["roc_auc_lo"], r["roc_auc_hi"])
    assert data["best"]["mode0_auc"] == auc
    assert auc in text, "the mode-0 ROC-AUC with its interval is printed as in models.csv"
    assert "SAMPLE PROFILE" in text, "a sample-profile PDF says so on its first page"
    assert "SAMPLE PROFILE" in " ".join(PdfReader(pdf).pages[0].extract_text().split())
    for row in data["tables"]["table6_fusion"]["rows"]:
        assert row[0].split(" (")[0] in text
    assert "reported" in text
    assert r["best_epoch"] == 2 and r["stopped_by"] == "epochs", "the models table says how each run ended"
    assert "3 (best 2; epochs)" in text, "and so does the paper"


def test_evaluate_still_offers_the_table_builders() -> None:
    """The tables moved to dfig.report.tables; notebooks and tests import them from dfig.report.evaluate."""
    from dfig.report import tables

    for name in tables.__all__:
        assert getattr(evaluate, name) is getattr(tables, name), name
        assert name in evaluate.__all__, name
