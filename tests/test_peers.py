"""Classical peers (dfig.stages.peers): separate the synthetic classes, chance on shuffled labels, val-only
selection, and report files the evaluation reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dfig.data.synthetic import generate
from dfig.stages import peers
from dfig.stages.lnp import read_lnp
from dfig.stages.train import split_samples

KW = {"crop": None, "highpass": True}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("peers") / "synth", n_train=40, n_eval=40, size=64, seed=3)


@pytest.fixture(scope="module")
def splits(synth: Path) -> dict[str, list]:
    return split_samples(synth)


def _no_test_reader(path: Path) -> np.ndarray:
    if "test" in Path(path).parts:
        raise AssertionError(f"the test split was read during fit: {path}")
    return read_lnp(path)


def test_feature_shapes_do_not_depend_on_image_size() -> None:
    rng = np.random.default_rng(0)
    mixed = [rng.normal(size=(64, 64, 3)), rng.normal(size=(80, 96, 3))]
    for kind in peers.FEATURE_KINDS:
        if kind == "dct":  # one coefficient per pixel: mixed sizes need a crop, else a clear error
            with pytest.raises(ValueError, match="give a crop"):
                peers.features(kind, mixed, crop=None)
            a = peers.features(kind, mixed, crop=48)
            assert a.shape == (2, 48 * 48) and np.isfinite(a).all()
            continue
        a = peers.features(kind, mixed, crop=None)
        assert a.shape[0] == 2 and np.isfinite(a).all(), kind
    assert peers.features("spec2d", [rng.normal(size=(64, 64, 3))], crop=None, bins=16).shape == (1, 256)
    assert peers.center_crop_array(np.zeros((256, 200, 3)), 128).shape == (128, 128, 3)
    with pytest.raises(ValueError, match="unknown feature kind"):
        peers.feature_vector("nope", np.zeros((8, 8, 3)))


@pytest.mark.parametrize("name", ["logreg_spec2d", "logreg_spec1d"])
def test_spectral_logreg_separates_synthetic_classes(splits: dict, name: str) -> None:
    fitted = peers.fit_peer(name, splits["train"], splits["val"], _no_test_reader, **KW)
    y, p, kept, rep = peers.evaluate_peer(fitted, splits["test"])
    assert len(kept) == len(splits["test"]) and not rep.failed
    assert roc_auc_score(y, p) > 0.9


def test_shuffled_labels_give_chance(splits: dict) -> None:
    rng = np.random.default_rng(0)

    def shuffled(ss: list) -> list:
        lab = rng.permutation([s.label for s in ss])
        return [dataclasses.replace(s, label=int(v)) for s, v in zip(ss, lab, strict=True)]

    fitted = peers.fit_peer("logreg_spec2d", shuffled(splits["train"]), shuffled(splits["val"]), **KW)
    y, p, _, _ = peers.evaluate_peer(fitted, splits["test"])
    assert abs(roc_auc_score(y, p) - 0.5) < 0.2


def test_hyperparameters_chosen_on_val_without_reading_test(splits: dict) -> None:
    fitted = peers.fit_peer("logreg_spec2d", splits["train"], splits["val"], _no_test_reader, **KW)
    aucs = [c["val_auc"] for c in fitted.candidates]
    assert len(aucs) == len(peers.build_peer("logreg_spec2d").grid) > 1
    assert fitted.candidates[int(np.argmax(aucs))]["C"] == fitted.params["C"]
    assert fitted.estimator[-1].C == fitted.params["C"]
    # the chosen model's validation scores are the ones it was chosen on
    assert roc_auc_score(fitted.y_val, fitted.p_val) == pytest.approx(max(aucs))


def test_boosting_on_residual_stats_learns(splits: dict) -> None:
    fitted = peers.fit_peer("hgb_stats", splits["train"], splits["val"], _no_test_reader, **KW)
    y, p, _, _ = peers.evaluate_peer(fitted, splits["test"])
    assert roc_auc_score(y, p) > 0.8
    assert set(fitted.params) == {"learning_rate", "max_leaf_nodes"}


def test_run_peer_writes_what_the_evaluation_reads(synth: Path, tmp_path: Path) -> None:
    bad = tmp_path / "tree"
    import shutil

    shutil.copytree(synth, bad)
    (bad / "train" / "real" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    meta = peers.run_peer("logreg_spec1d", bad, out, n_boot=50, progress=False, **KW)
    m = json.loads((out / "metrics" / "peer_logreg_spec1d.json").read_text())
    assert m["name"] == "peer_logreg_spec1d" and m["epochs"] == "n/a" and m["train_mode"] == "peer"
    assert m["arch"] == "logreg" and 0 < m["threshold"] < 1
    for k in ("acc", "ap", "roc_auc", "eer", "roc_auc_lo", "roc_auc_hi", "ap_lo", "ap_hi"):
        assert k in m["test_metrics"] and k in m["val_metrics"]
    assert m["test_metrics"]["roc_auc_lo"] <= m["test_metrics"]["roc_auc"] <= m["test_metrics"]["roc_auc_hi"]
    assert m["skipped_files"] == 1 and m["data_report"]["train"]["failed"][0]["path"].endswith("broken.png")
    assert meta["threshold"] == m["threshold"]
    for split, n in (("val", 80), ("test", 80)):
        df = pd.read_csv(out / "predictions" / f"peer_logreg_spec1d_{split}.csv")
        assert list(df.columns) == ["path", "label", "p_fake", "pred"] and len(df) == n
        assert df["p_fake"].between(0, 1).all()


def test_cli_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert peers.main(["--name", "logreg_spec2d", "--dataroot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing" in err and "\n" not in err
    with pytest.raises(SystemExit) as e:
        peers.main(["--name", "nope", "--dataroot", str(tmp_path)])
    assert e.value.code == 2


def test_cli_runs(synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = peers.main(
        [
            "--name",
            "logreg_spec2d",
            "--dataroot",
            str(synth),
            "--out",
            str(tmp_path),
            "--crop",
            "0",
            "--highpass",
            "--bins",
            "16",
            "--n_boot",
            "20",
            "--no_progress",
        ]
    )
    assert rc == 0
    assert "test: AUC" in capsys.readouterr().out
    assert (tmp_path / "metrics" / "peer_logreg_spec2d.json").exists()
