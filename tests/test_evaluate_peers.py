"""Classical peers are rows of the evaluation (same metrics and intervals, family "peer", never the
method), trained by 05_evaluate on a DFIG run's tree and region; harmonised cross-generator folders are
marked as such in their table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dfig import io, paths
from dfig.data.synthetic import generate
from dfig.report import evaluate, paper, plots
from dfig.stages import peers

PROFILE = "sample"
#: fake DFIG runs: name -> (features, tag, separation of the scores)
DFIG_RUNS = {
    "mobilev2_mode0": ("lnp", "", 0.05),
    "mobilev2_lnponly": ("lnp", "lnponly", 0.04),
    "mobilev2_rgb": ("faces", "rgb", 0.03),
}
OPTIONS = {"center_region": None, "crop_size": 32, "no_crop": False, "classes": "", "load_size": 0}


class Ctx:
    """What ``evaluate.run_peers`` uses of the notebook context."""

    def __init__(self, trees: dict[str, Path]) -> None:
        self.profile, self.params, self.device, self.trees = PROFILE, {"seed": 0}, "cpu", trees

    def require(self, name: str, made_by: str) -> Path:
        assert made_by == ("02_lnp" if name.startswith("lnp") else "01_segmentation")
        return self.trees[name]


def _fake_dfig_runs() -> None:
    """Write what 04_train writes (train_<run>.json, predictions) for weak DFIG runs."""
    rng = np.random.default_rng(0)
    for run, (feats, tag, sep) in DFIG_RUNS.items():
        for split in ("val", "test"):
            y = np.repeat([0, 1], 40)
            p = np.clip(0.5 + (y - 0.5) * sep + rng.normal(0, 0.25, y.size), 0, 1)
            df = pd.DataFrame({"path": [f"{split}/{k}.png" for k in range(y.size)], "label": y, "p_fake": p})
            df["pred"] = (p >= 0.5).astype(int)
            dest = paths.predictions_dir(PROFILE) / f"{run}_{split}.csv"
            dest.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(dest, index=False)
        meta = {"name": run, "arch": "mobilev2", "train_mode": "0" if "mode" in run else "lnp", "tag": tag}
        meta.update(
            {"features": feats, "epochs": 3, "train_minutes": 1.0, "threshold": 0.5, "options": OPTIONS}
        )
        io.save_metrics(meta, f"train_{run}")


@pytest.fixture()
def with_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DFIG_PROFILE", PROFILE)
    tree = generate(tmp_path / "lnp", n_train=40, n_eval=40, size=64, seed=3)
    _fake_dfig_runs()
    written = evaluate.run_peers(Ctx({"lnp": tree}), ["logreg_spec2d", "hgb_stats"], "mobilev2_mode0", 50)
    runs = evaluate.load_runs(PROFILE)
    return {"written": written, "runs": runs, "models": evaluate.models_table(runs, n_boot=50)}


def test_peers_are_rows_with_the_same_metrics_and_intervals(with_peers: dict[str, Any]) -> None:
    runs, models = with_peers["runs"], with_peers["models"]
    assert [m["name"] for m in with_peers["written"]] == ["peer_logreg_spec2d", "peer_hgb_stats"]
    assert {n: r.family for n, r in runs.items()} == {
        "mobilev2_lnponly": "DFIG",
        "mobilev2_mode0": "DFIG",
        "mobilev2_rgb": "baseline",
        "peer_hgb_stats": "peer",
        "peer_logreg_spec2d": "peer",
    }
    assert list(models["family"]) == ["DFIG", "DFIG", "baseline", "peer", "peer"]
    r = models.set_index("run").loc["peer_logreg_spec2d"]
    assert r["backbone"] == "logistic regression (2-D log spectrum)" and r["mode"] == "peer"
    assert models.set_index("run").loc["peer_hgb_stats", "backbone"] == "gradient boosting (residual stats)"
    assert r["roc_auc_lo"] <= r["roc_auc"] <= r["roc_auc_hi"] and r["ap_lo"] <= r["ap"] <= r["ap_hi"]
    pred = pd.read_csv(paths.predictions_dir(PROFILE) / "peer_logreg_spec2d_test.csv")
    assert r["roc_auc"] == pytest.approx(roc_auc_score(pred["label"], pred["p_fake"]))
    assert r["roc_auc"] == pytest.approx(with_peers["written"][0]["test_metrics"]["roc_auc"])
    assert r["n_test"] == 80 and r["epochs"] == "n/a"
    # the same splits and central view as the DFIG run
    assert with_peers["written"][0]["feature_options"] == {"crop": 32, "highpass": False}


def test_paper_tables_and_figure_label_peers_and_keep_the_method(with_peers: dict[str, Any]) -> None:
    runs, models = with_peers["runs"], with_peers["models"]
    tables = evaluate.build_tables(runs, n_boot=50)
    for key, (df, cap) in tables.items():
        io.save_table(df, key, caption=cap)
        if key.startswith("ablation"):
            assert not df["run"].str.startswith("peer_").any(), key
    assert evaluate.main_backbone(models) == "mobilev2"
    dfig_best = models[models["family"] == "DFIG"]["roc_auc"].max()
    assert models[models["family"] == "peer"]["roc_auc"].max() > dfig_best  # the peers win here...
    data = paper.paper_data(PROFILE)
    assert data["best"]["run"] in ("mobilev2_mode0", "mobilev2_lnponly")  # ...and are still not the method
    assert [p["run"] for p in data["peers"]] == ["peer_hgb_stats", "peer_logreg_spec2d"]
    t = data["tables"]["models"]
    fam = t["header"].index("family")
    assert {row[0]: row[fam] for row in t["rows"]}["peer_hgb_stats"] == "peer"
    fig = plots.roc_pr_curves(runs)
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert any(lab.startswith("peer_logreg_spec2d (classical peer)") for lab in labels)
    assert "models and classical peers" in fig.axes[0].get_title()


def test_run_peers_needs_a_trained_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIG_PROFILE", PROFILE)
    ctx = Ctx({})
    assert evaluate.run_peers(ctx, [], "mobilev2_mode0") == []
    with pytest.raises(FileNotFoundError, match="set peers_like to a trained run"):
        evaluate.run_peers(ctx, ["hgb_stats"], "mobilev2_nothere")


def test_options_like_follow_the_dfig_run() -> None:
    opts = {"center_region": 96, "crop_size": 128}
    assert peers.options_like({"features": "lnp_clean", "options": opts}) == {"crop": 96, "highpass": False}
    opts = {"center_region": None, "crop_size": 128, "no_crop": True}
    assert peers.options_like({"features": "faces", "options": opts}) == {"crop": None, "highpass": True}
    assert peers.options_like({"options": {"crop_size": 128, "eval_crop_size": 112}})["crop"] == 112
    assert peers.options_like({"options": {"cropSize": 128}})["crop"] == 128  # a run from before the rename


@pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")  # prior segmenter, by design
@pytest.mark.filterwarnings("error::dfig.stages.predict.InputMismatchWarning")  # harmonised = photos
def test_cross_generator_table_says_which_folders_were_harmonised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_predict import extract, fake_checkpoint, make_raw_tree

    from dfig.data.harmonize import harmonize_tree

    monkeypatch.setenv("DFIG_PROFILE", PROFILE)
    raw = make_raw_tree(tmp_path / "other_gan", n=3)
    ck = paths.checkpoints_dir(PROFILE) / "mobilev2_mode0" / "model_epoch_best.pth"
    ck.parent.mkdir(parents=True)
    fake_checkpoint(ck, io.read_stage_meta(extract(raw, tmp_path / "feat", "compat")))
    harmonize_tree(raw, tmp_path / "other_gan_h", size=40, jpeg_quality=80, progress=False)
    df = evaluate.cross_generator_table(Ctx({}), "mobilev2_mode0", [str(raw), str(tmp_path / "other_gan_h")])
    assert list(df["test_folder"]) == ["other_gan", "other_gan_h"]  # no absolute path in the table
    assert df.loc[0, "history"] == evaluate.NOT_HARMONISED
    assert df.loc[1, "history"] == "harmonised: 40 px, JPEG q80 4:2:0, bicubic"
    assert list(df["n"]) == [6, 6] and df["roc_auc"].between(0, 1).all()
