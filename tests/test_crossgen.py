"""Other generators: the log-DCT peer (Frank et al. 2020), saved peers, and every run and peer scored on a
folder of another generator's fakes, raw and harmonised, with the same scores as ``predict --raw``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from dfig import io, paths
from dfig.data.synthetic import generate
from dfig.report import crossgen, evaluate
from dfig.stages import peers
from dfig.stages.predict import predict_folder
from dfig.stages.train import split_samples

PROFILE = "xg"
pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")  # prior/classical, by design


def test_log_dct_keeps_every_coefficient_of_the_grey_image() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (40, 40, 3))
    v = peers.feature_vector("dct", img, crop=32)
    assert v.shape == (32 * 32,) and np.isfinite(v).all()
    from scipy.fft import dctn

    grey = peers.center_crop_array(img, 32).mean(axis=2)
    assert v[0] == pytest.approx(np.log(abs(dctn(grey, norm="ortho")[0, 0]) + 1e-12))
    assert peers.build_peer("logreg_dct").source == "photos"


def test_dct_peer_separates_synthetic_classes(tmp_path: Path) -> None:
    s = split_samples(generate(tmp_path / "s", n_train=40, n_eval=40, size=64, seed=3))
    fitted = peers.fit_peer("logreg_dct", s["train"], s["val"], crop=None)
    y, p, _, _ = peers.evaluate_peer(fitted, s["test"])
    assert roc_auc_score(y, p) > 0.8
    assert [c["C"] for c in fitted.candidates] == [g["C"] for g in peers.PEERS["logreg_dct"]().grid]


def _lnp_tree(raw: Path, out: Path) -> Path:
    from dfig.core.denoise import build_denoiser
    from dfig.stages.lnp import extract_tree
    from dfig.stages.segment import build_segmenter, segment_tree

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg, rec = build_segmenter("prior")
        segment_tree(raw, out / "faces", seg, record=rec, progress=False)
        den, rec = build_denoiser("classical")
        extract_tree(out / "faces", out / "lnp", den, save_mode="clean", record=rec, progress=False)
    return out / "lnp"


@pytest.fixture()
def profile_with_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A profile with one trained run (random weights, real feature record) and two saved peers."""
    monkeypatch.setenv("DFIG_PROFILE", PROFILE)
    raw = generate(tmp_path / "raw", n_train=12, n_eval=8, size=48, seed=1)
    lnp = _lnp_tree(raw, paths.work_dir(PROFILE))
    ckpt = paths.checkpoints_dir(PROFILE) / "mobilev2_mode0" / "model_epoch_best.pth"
    ckpt.parent.mkdir(parents=True)
    _checkpoint(ckpt, io.read_stage_meta(lnp))
    paths.predictions_dir(PROFILE).mkdir(parents=True, exist_ok=True)
    for split in ("val", "test"):  # load_runs needs them; the cross-generator scores do not use them
        pred = pd.DataFrame({"path": ["a", "b"], "label": [0, 1], "p_fake": [0.1, 0.9], "pred": [0, 1]})
        pred.to_csv(paths.predictions_dir(PROFILE) / f"mobilev2_mode0_{split}.csv", index=False)
    meta = {"name": "mobilev2_mode0", "arch": "mobilev2", "train_mode": 0, "tag": "", "features": "lnp"}
    meta["options"] = {"center_region": None, "crop_size": 32, "classes": ""}
    io.save_metrics(meta, "train_mobilev2_mode0")
    peers.run_peers_like(
        ["logreg_spec2d", "logreg_dct"], meta, lnp, photo_root=raw, n_boot=20, progress=False
    )
    other = tmp_path / "othergen" / "fake"
    other.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(5):  # another generator: larger PNGs
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(other / f"o{i}.png")
    return {"raw": raw, "other": other, "lnp": lnp, "ckpt": ckpt}


def _checkpoint(path: Path, features: dict) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tp", Path(__file__).parent / "test_predict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fake_checkpoint(path, features)


def test_every_run_and_peer_scored_raw_and_harmonised(profile_with_runs: dict[str, Path]) -> None:
    d = profile_with_runs
    before = sorted(p.name for p in d["other"].iterdir())
    missing = str(d["other"].parent / "absent")
    folders = crossgen.prepare_folders(PROFILE, d["raw"] / "test" / "real", [str(d["other"]), missing])
    assert [f["version"] for f in folders] == ["raw", "harmonised"]
    assert folders[1]["history"].startswith("harmonised: 256 px, JPEG q75")
    assert sorted(p.name for p in d["other"].iterdir()) == before, "nothing written into the input"
    runs = evaluate.load_runs(PROFILE)
    df = crossgen.score_folders(runs, folders, n_boot=20)
    assert set(df["run"]) == {"mobilev2_mode0", "peer_logreg_spec2d", "peer_logreg_dct"}
    assert len(df) == 6 and (df["n_fake"] == 5).all()
    assert (df["n_real"] == len(list((d["raw"] / "test" / "real").iterdir()))).all()
    assert (df["roc_auc_lo"] <= df["roc_auc"]).all() and (df["roc_auc"] <= df["roc_auc_hi"]).all()
    # the trained run's raw scores are predict --raw's on the same folder
    ref = predict_folder(d["ckpt"], folders[0]["root"] / "test", raw=True)
    row = df[(df["run"] == "mobilev2_mode0") & (df["version"] == "raw")].iloc[0]
    y = [int(Path(p).parent.name == "fake") for p in ref["path"]]  # links: label from where they sit
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, ref["p_fake"]), abs=1e-6)
    wide = crossgen.wide_table(df)
    assert len(wide) == 3 and {"raw_roc_auc", "harmonised_roc_auc"} <= set(wide.columns)
    saved = peers.load_fitted(paths.resolve(runs["peer_logreg_dct"].meta["model_path"]))
    assert saved["name"] == "logreg_dct" and saved["source"] == "photos"
