"""dfig.stages.predict: LNP folders, raw photos through the recorded pipeline (exact), errors, CLI."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dfig import io
from dfig.core.models import CheckpointMismatchError, build_detector
from dfig.stages.predict import (
    PipelineMismatchError,
    build_feature_pipeline,
    default_output_csv,
    label_of,
    main,
    predict_folder,
    stage_chain,
    write_predictions,
)
from dfig.stages.train import TrainOptions

SIZE = 48
pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")  # prior segmenter, by design


def make_raw_tree(root: Path, n: int = 2, seed: int = 0) -> Path:
    """A tiny raw 'photo' tree test/{real,fake}/*.jpg (JPEG, as the face sample)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for cls in ("real", "fake"):
        d = root / "test" / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            base = np.stack([xx * 3 + 40, yy * 2 + 60, (xx + yy) + 20], -1).astype(np.float64)
            a = np.clip(base + rng.normal(0, 8 if cls == "real" else 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(d / f"{cls}_{i}.jpg", quality=90)
    return root


def extract(raw: Path, out: Path, save_mode: str, segment: bool = True) -> Path:
    """Run the real stages (prior segmenter, classical denoiser) on ``raw``; return the LNP root."""
    from dfig.core.denoise import build_denoiser
    from dfig.stages.lnp import extract_tree
    from dfig.stages.segment import build_segmenter, segment_tree

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = raw
        if segment:
            seg, rec = build_segmenter("prior")
            segment_tree(raw, out / "faces", seg, record=rec, progress=False)
            src = out / "faces"
        den, rec = build_denoiser("classical")
        extract_tree(src, out / f"lnp_{save_mode}", den, save_mode=save_mode, record=rec, progress=False)
    return out / f"lnp_{save_mode}"


def fake_checkpoint(
    path: Path, features: dict, arch: str = "mobilev2", mode: int | str = 0, **opt_kw
) -> Path:
    """A checkpoint as dfig.stages.train writes it (random weights), with the given feature record."""
    torch.manual_seed(0)
    model = build_detector(arch, mode)
    # make BatchNorm statistics non-trivial so that scores differ between images
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 32, 32))
    opts = TrainOptions(
        name="p",
        dataroot="x",
        arch=arch,
        train_mode=mode,
        **{"load_size": SIZE, "crop_size": 32, "normalize": "imagenet", **opt_kw},
    )
    d = asdict(opts)
    d["blur_sig"], d["jpg_qual"] = list(d["blur_sig"]), list(d["jpg_qual"])
    torch.save(
        {
            "model": model.state_dict(),
            "config": model.config(),
            "options": d,
            "features": features,
            "threshold": 0.4,
            "epoch": 1,
            "step": 1,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pred")
    raw = make_raw_tree(base / "raw")
    return {
        "raw": raw,
        "compat": extract(raw, base, "compat"),
        "clean": extract(raw, base, "clean"),
        "base": base,
    }


# ---------------------------------------------------------------------------------------------


def test_predict_lnp_folder_writes_csv_with_labels(trees: dict[str, Path], tmp_path: Path) -> None:
    ck = fake_checkpoint(tmp_path / "model_epoch_best.pth", io.read_stage_meta(trees["compat"]))
    df = predict_folder(ck, trees["compat"], backbone="mobilev2", mode=0)
    assert list(df.columns) == ["path", "p_fake", "pred_label", "true_label"]
    assert len(df) == 4 and sorted(df["true_label"]) == [0, 0, 1, 1]
    assert df["p_fake"].between(0, 1).all()
    assert (df["pred_label"] == (df["p_fake"] > 0.5)).all()
    for p, lab in zip(df["path"], df["true_label"]):
        assert ("fake" in Path(p).parent.name) == bool(lab) and p.endswith(".png")
    # threshold "val" uses the checkpoint's stored threshold
    dv = predict_folder(ck, trees["compat"], threshold="val")
    assert dv.attrs["threshold"] == pytest.approx(0.4)
    assert (dv["pred_label"] == (dv["p_fake"] > 0.4)).all()
    dest = write_predictions(df, default_output_csv(ck, trees["compat"], False), trees["compat"])
    assert dest.parent == tmp_path and dest.name == "predict_lnp_compat.csv"
    back = pd.read_csv(dest)
    np.testing.assert_allclose(back["p_fake"], df["p_fake"])


def test_no_labels_for_a_flat_folder(tmp_path: Path, trees: dict[str, Path]) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((trees["compat"] / "test").rglob("*.png"))[:2]:
        (flat / f.name).write_bytes(f.read_bytes())
    ck = fake_checkpoint(tmp_path / "m.pth", io.read_stage_meta(trees["compat"]))
    df = predict_folder(ck, flat)
    assert list(df.columns) == ["path", "p_fake", "pred_label"] and len(df) == 2


@pytest.mark.parametrize("mode", ["compat", "clean"])
def test_raw_pipeline_rebuilds_the_features_exactly(trees: dict[str, Path], mode: str) -> None:
    """segment -> LNP in memory == the files the stages wrote (same arrays, same scores)."""
    from dfig.data.dataset import load_sample_image

    feats = io.read_stage_meta(trees[mode])
    pipe = build_feature_pipeline(feats)
    assert [m["stage"] for m in pipe.chain] == ["segmentation", "lnp"] and pipe.save_mode == mode
    for f in sorted((trees["raw"] / "test").rglob("*.jpg")):
        rel = f.relative_to(trees["raw"]).with_suffix(".png" if mode == "compat" else ".npy")
        want = np.asarray(load_sample_image(trees[mode] / rel), dtype=np.float32)
        got = np.asarray(pipe.from_path(f), dtype=np.float32)
        np.testing.assert_array_equal(got, want, err_msg=str(f))


def test_raw_pipeline_without_segmentation_is_exact(trees: dict[str, Path]) -> None:
    from dfig.data.dataset import load_sample_image

    lnp = extract(trees["raw"], trees["base"] / "noseg", "compat", segment=False)
    pipe = build_feature_pipeline(io.read_stage_meta(lnp))
    assert [m["stage"] for m in pipe.chain] == ["lnp"]
    for f in sorted((trees["raw"] / "test").rglob("*.jpg")):
        want = np.asarray(load_sample_image(lnp / f.relative_to(trees["raw"]).with_suffix(".png")))
        np.testing.assert_array_equal(np.asarray(pipe.from_path(f)), want)


def test_predict_raw_equals_predict_on_lnp_files(trees: dict[str, Path], tmp_path: Path) -> None:
    ck = fake_checkpoint(tmp_path / "model_epoch_best.pth", io.read_stage_meta(trees["compat"]))
    d_lnp = predict_folder(ck, trees["compat"])
    d_raw = predict_folder(ck, trees["raw"], raw=True, backbone="mobilev2", mode=0)
    assert len(d_raw) == 4 and "true_label" in d_raw
    assert d_raw.attrs["pipeline"] == "segment[prior, face png] -> LNP[classical h=5, compat]"
    key = lambda p: Path(p).relative_to(Path(p).parents[2]).with_suffix("").as_posix()  # noqa: E731
    a = dict(zip(map(key, d_lnp["path"]), d_lnp["p_fake"]))
    b = dict(zip(map(key, d_raw["path"]), d_raw["p_fake"]))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6), k


def test_cli_raw_writes_csv_and_summary(
    trees: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = fake_checkpoint(tmp_path / "model_epoch_best.pth", io.read_stage_meta(trees["compat"]))
    out = tmp_path / "out" / "pred.csv"
    assert (
        main(
            [
                "--backbone",
                "mobilev2",
                "--mode",
                "0",
                "--model_path",
                str(ck),
                "--input_dir",
                str(trees["raw"]),
                "--raw",
                "--output_csv",
                str(out),
                "--no_progress",
            ]
        )
        == 0
    )
    df = pd.read_csv(out)
    assert len(df) == 4 and set(df.columns) == {"path", "p_fake", "pred_label", "true_label", "face_found"}
    text = capsys.readouterr().out
    assert "4 images scored" in text and "mean p_fake" in text and "roc_auc" in text
    # default destination: next to the checkpoint
    assert main(["--model_path", str(ck), "--input_dir", str(trees["compat"]), "--no_progress"]) == 0
    assert (tmp_path / "predict_lnp_compat.csv").is_file()


def test_wrong_backbone_or_mode_names_what_the_file_holds(trees: dict[str, Path], tmp_path: Path) -> None:
    ck = fake_checkpoint(tmp_path / "m.pth", io.read_stage_meta(trees["compat"]))
    with pytest.raises(CheckpointMismatchError, match="holds a mobilev2 detector"):
        predict_folder(ck, trees["compat"], backbone="res50", mode=0)
    with pytest.raises(CheckpointMismatchError, match="holds a mode 0 detector"):
        predict_folder(ck, trees["compat"], backbone="mobilev2", mode=2)


def test_output_inside_input_is_refused(trees: dict[str, Path], tmp_path: Path) -> None:
    ck = fake_checkpoint(tmp_path / "m.pth", io.read_stage_meta(trees["compat"]))
    df = predict_folder(ck, trees["compat"])
    with pytest.raises(ValueError, match="inside the input folder"):
        write_predictions(df, trees["compat"] / "p.csv", trees["compat"])


def test_bad_file_is_skipped_and_listed(trees: dict[str, Path], tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for f in (trees["raw"] / "test").rglob("*.jpg"):
        dest = raw / f.relative_to(trees["raw"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    (raw / "test" / "fake" / "broken.jpg").write_bytes(b"not a jpeg")
    ck = fake_checkpoint(tmp_path / "m.pth", io.read_stage_meta(trees["compat"]))
    df = predict_folder(ck, raw, raw=True)
    assert len(df) == 4 and [Path(p).name for p, _ in df.attrs["skipped"]] == ["broken.jpg"]
    from dfig.data.images import BadImageError

    with pytest.raises(BadImageError, match="broken.jpg"):
        predict_folder(ck, raw, raw=True, policy="strict")


def test_unavailable_components_are_errors_not_substitutes(tmp_path: Path) -> None:
    cyc = {
        "stage": "lnp",
        "save_mode": "compat",
        "input": {},
        "denoiser": {
            "method": "cycleisp",
            "path": str(tmp_path / "missing" / "sidd_rgb.pth"),
            "sha256": "ab",
        },
    }
    with pytest.raises(PipelineMismatchError, match="CycleISP"):
        build_feature_pipeline(cyc)
    sam = {
        "stage": "segmentation",
        "face_format": "png",
        "input": {},
        "segmenter": {
            "method": "sam",
            "name": "sam_vit_h_points",
            "model_type": "vit_h",
            "prompt": "points",
            "weights": {"file": "sam_vit_h_4b8939.pth", "path": str(tmp_path / "nope.pth")},
        },
    }
    with pytest.raises(PipelineMismatchError, match="SAM vit_h"):
        build_feature_pipeline(sam)
    with pytest.raises(PipelineMismatchError, match="unknown feature stage"):
        stage_chain({"stage": "resize"})


def test_identity_pipeline_for_raw_image_detectors(trees: dict[str, Path]) -> None:
    pipe = build_feature_pipeline({})
    f = next((trees["raw"] / "test" / "real").glob("*.jpg"))
    from dfig.data.images import load_rgb

    np.testing.assert_array_equal(np.asarray(pipe.from_path(f)), np.asarray(load_rgb(f)))
    assert "identity" in pipe.describe()


def test_label_of(tmp_path: Path) -> None:
    assert label_of(tmp_path / "a" / "0_real" / "x.png", tmp_path) == 0
    assert label_of(tmp_path / "fake" / "sub" / "x.png", tmp_path) == 1
    assert label_of(tmp_path / "x.png", tmp_path) is None


# ---------------------------------------------------------------------------------------------
# robustness (same in-memory pipeline, perturbation before segmentation / LNP)


def test_robustness_rows_and_perturbed_features(trees: dict[str, Path], tmp_path: Path) -> None:
    from dfig.data.images import load_rgb
    from dfig.stages.robustness import DEFAULT_PERTURBATIONS, _perturbed_reader, evaluate_robustness

    assert [p[0] for p in DEFAULT_PERTURBATIONS] == [
        "none",
        "jpeg_q95",
        "jpeg_q75",
        "jpeg_q50",
        "blur_s1",
        "blur_s2",
        "downscale_0.5",
    ]
    feats = io.read_stage_meta(trees["compat"])
    ck = fake_checkpoint(tmp_path / "m.pth", feats)
    pert = DEFAULT_PERTURBATIONS[:1] + DEFAULT_PERTURBATIONS[3:4]
    df = evaluate_robustness(ck, trees["raw"], perturbations=pert, n_boot=20)
    assert list(df["perturbation"]) == ["none", "jpeg_q50"] and (df["n"] == 4).all()
    assert {
        "acc",
        "ap",
        "roc_auc",
        "eer",
        "acc_val_thr",
        "roc_auc_lo",
        "roc_auc_hi",
        "ap_lo",
        "ap_hi",
    } <= set(df)
    assert df.attrs["pipeline"] == "segment[prior, face png] -> LNP[classical h=5, compat]"
    # the reference row reads exactly the features predict --raw computes; JPEG q50 changes them
    pipe = build_feature_pipeline(feats)
    f = sorted((trees["raw"] / "test" / "fake").glob("*.jpg"))[0]
    ref = np.asarray(_perturbed_reader(pipe, None, None)(f))
    np.testing.assert_array_equal(ref, np.asarray(pipe.from_rgb(np.asarray(load_rgb(f)))))
    assert not np.array_equal(ref, np.asarray(_perturbed_reader(pipe, "jpeg", 50)(f)))


def test_center_region_option_is_applied_in_predict(trees: dict[str, Path], tmp_path: Path) -> None:
    ck = fake_checkpoint(
        tmp_path / "m.pth", io.read_stage_meta(trees["compat"]), center_region=40, eval_crop_size=40
    )
    d_lnp = predict_folder(ck, trees["compat"])
    d_raw = predict_folder(ck, trees["raw"], raw=True)
    np.testing.assert_allclose(np.sort(d_lnp["p_fake"]), np.sort(d_raw["p_fake"]), atol=1e-6)
