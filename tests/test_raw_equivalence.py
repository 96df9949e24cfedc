"""Raw photos through ``predict --raw`` / robustness give the scores of the feature files (issue 12, part 1).

Every feature setting a profile can use is built for real on a tiny raw tree and compared with the
in-memory rebuild from the checkpoint's record: save mode compat / clean, segmenter prior / SAM (a
small random SAM written as the official file ``sam_vit_b_01ec64.pth``: a plain state dict, loaded by
the strict loader), denoiser classical / CycleISP (random weights in the official ``sidd_rgb.pth``
layout, as tests/test_denoise.py writes them). Raw trees: the synthetic generator's set (its stage
record says ``synthetic``, as in the smoke profile) and JPEG photos with no record (as the sample).
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_denoise import write_official
from test_predict import fake_checkpoint

from dfig.core.metrics import compute_metrics
from dfig.data.dataset import load_sample_image
from dfig.io import read_stage_meta
from dfig.report.evaluate import compare_with_feature_files
from dfig.stages.predict import build_feature_pipeline, predict_folder
from dfig.stages.robustness import evaluate_robustness

SIZE = 32  # raw photos of 32 px: the checkpoints load 32 and crop 32 (CycleISP costs ~1 s per call here)
pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")


def tiny_sam(checkpoint: str | None = None) -> torch.nn.Module:
    """SAM's modules at a small size (256 px input, 32-dim 2-block encoder), fixed random weights."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    size, patch, dim = 256, 16, 32
    encoder = ImageEncoderViT(
        depth=2,
        embed_dim=dim,
        img_size=size,
        mlp_ratio=4,
        num_heads=2,
        patch_size=patch,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=[1],
        window_size=4,
        out_chans=dim,
    )
    prompt = PromptEncoder(
        embed_dim=dim,
        image_embedding_size=(size // patch, size // patch),
        input_image_size=(size, size),
        mask_in_chans=16,
    )
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=dim,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
    )
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=prompt,
        mask_decoder=decoder,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory):
    """The SAM and CycleISP stand-in files; SAM 'vit_b' builds the small architecture meanwhile."""
    import segment_anything

    d = tmp_path_factory.mktemp("weights")
    sam = d / "sam_vit_b_01ec64.pth"
    torch.save(tiny_sam().state_dict(), sam)  # the official file is a plain state dict
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(segment_anything.sam_model_registry, "vit_b", tiny_sam)
        yield {"sam": sam, "cycleisp": write_official(d / "sidd_rgb.pth")}


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``synthetic``: the generator's set (PNG, stage record); ``photos``: JPEGs without any record."""
    from dfig.data.synthetic import generate

    base = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for cls, noise in (("real", 8), ("fake", 20)):
        d = base / "photos" / "raw" / "test" / cls
        d.mkdir(parents=True)
        for i in range(2):
            img = np.stack([xx * 3 + 40, yy * 2 + 60, (xx + yy) + 20], -1) + rng.normal(
                0, noise, (SIZE, SIZE, 3)
            )
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{cls}_{i}.jpg", quality=90)
    return {
        "synthetic": generate(base / "synthetic" / "raw", n_train=1, n_eval=2, size=SIZE),
        "photos": base / "photos" / "raw",
    }


#: every combination on the synthetic set (smoke's data); on photos, the fallback and the paper settings
SETTINGS = [
    ("synthetic", seg, den, mode)
    for seg in ("prior", "sam")
    for den in ("classical", "cycleisp")
    for mode in ("compat", "clean")
] + [("photos", "prior", "classical", "compat"), ("photos", "sam", "cycleisp", "clean")]


def build_tree(
    raw: Path,
    out: Path,
    stand_ins: dict[str, Path],
    segmenter: str,
    denoiser: str,
    save_mode: str,
    classical_h: float | None = None,
) -> Path:
    """The training features, made by the real stages as notebooks 01 and 02 make them."""
    from dfig.core.denoise import build_denoiser
    from dfig.stages.lnp import extract_tree
    from dfig.stages.segment import build_segmenter, segment_tree

    faces = out / f"faces_{segmenter}"
    if not (faces / "dfig_stage.json").exists() or read_stage_meta(faces).get("counts") is None:
        seg, rec = build_segmenter(
            segmenter, model_type="vit_b", checkpoint=stand_ins["sam"], verify="none", allow_fallback=True
        )
        segment_tree(raw, faces, seg, record=rec, progress=False)
    den, rec = build_denoiser(
        denoiser,
        checkpoint=stand_ins["cycleisp"] if denoiser == "cycleisp" else None,
        classical_h=classical_h,
    )
    lnp = out / (f"lnp_{segmenter}_{denoiser}_{save_mode}" + (f"_h{classical_h:g}" if classical_h else ""))
    extract_tree(faces, lnp, den, save_mode=save_mode, record=rec, progress=False)
    return lnp


def test_tiny_sam_stand_in_segments_something(stand_ins: dict[str, Path]) -> None:
    from dfig.stages.segment import SamSegmenter, build_segmenter

    seg, rec = build_segmenter(
        "sam", model_type="vit_b", checkpoint=stand_ins["sam"], verify="none", allow_fallback=False
    )
    assert isinstance(seg, SamSegmenter) and rec["weights"]["file"] == "sam_vit_b_01ec64.pth"
    area = seg.segment(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).mask.mean()
    assert 0.0 < area < 1.0  # a real mask, unlike the prior's fixed ellipse or 'none'


@pytest.mark.parametrize(("kind", "segmenter", "denoiser", "save_mode"), SETTINGS)
def test_raw_path_gives_the_feature_path_scores(
    raws: dict[str, Path],
    stand_ins: dict[str, Path],
    tmp_path: Path,
    kind: str,
    segmenter: str,
    denoiser: str,
    save_mode: str,
) -> None:
    raw = raws[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lnp = build_tree(raw, raw.parent / "features", stand_ins, segmenter, denoiser, save_mode)
    ck = fake_checkpoint(tmp_path / "ck.pth", read_stage_meta(lnp), load_size=SIZE, crop_size=SIZE)
    features = torch.load(ck, weights_only=False)["features"]

    pipe = build_feature_pipeline(features)
    assert pipe.describe().startswith(f"segment[{segmenter if segmenter == 'prior' else 'sam_vit_b_points'}")
    strength = " h=5" if denoiser == "classical" else ""  # the classical denoiser's default strength
    assert f"LNP[{denoiser}{strength}, {save_mode}]" in pipe.describe()
    for f in sorted((raw / "test").rglob("*.*g")):  # .png (synthetic) / .jpg (photos)
        rel = f.relative_to(raw).with_suffix(".png" if save_mode == "compat" else ".npy")
        want = np.asarray(load_sample_image(lnp / rel), dtype=np.float32)
        got = np.asarray(pipe.from_path(f), dtype=np.float32)
        assert got.shape == want.shape
        if save_mode == "compat":  # uint8 files: identical (a batch-size rounding flip at most, never seen)
            assert np.mean(got != want) <= 1e-3, f"{f.name}: {np.mean(got != want):.4%} of the values differ"
        else:
            np.testing.assert_allclose(got, want, atol=2e-3, err_msg=f.name)

    by_files = predict_folder(ck, lnp / "test")
    by_raw = predict_folder(ck, raw / "test", raw=True)
    a = dict(zip(by_files["path"].map(lambda p: Path(p).stem), by_files["p_fake"]))
    b = dict(zip(by_raw["path"].map(lambda p: Path(p).stem), by_raw["p_fake"]))
    assert len(a) == 4 and a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in sorted(a)], [a[k] for k in sorted(a)], atol=1e-5)

    rob = evaluate_robustness(ck, raw, perturbations=[("none", None, None)], n_boot=0)
    m = compute_metrics(by_files["true_label"].to_numpy(), by_files["p_fake"].to_numpy(), 0.5)
    row = rob.iloc[0]
    assert row["n"] == 4
    for k in ("acc", "roc_auc", "ap"):
        assert row[k] == pytest.approx(m[k], abs=1e-9), k
    assert row["mean_p_fake"] == pytest.approx(float(np.mean(list(a.values()))), abs=1e-5)
    assert "the same images as the models table" in compare_with_feature_files(rob, by_files)
    off = by_files.assign(p_fake=by_files["p_fake"] + np.r_[0.0, 0.0, 0.0, 0.02])
    with pytest.warns(RuntimeWarning, match="does not reproduce the training features"):
        assert "differs from its feature file's" in compare_with_feature_files(rob, off)


def test_raw_path_rebuilds_the_classical_strength(
    raws: dict[str, Path], stand_ins: dict[str, Path], tmp_path: Path
) -> None:
    """LNPs made with ``classical_h=20``: the checkpoint's recorded pipeline rebuilds h=20 (not the default)."""
    from dfig.core.denoise import CLASSICAL_H

    raw = raws["photos"]
    lnp = build_tree(raw, tmp_path / "features", stand_ins, "prior", "classical", "compat", classical_h=20)
    assert read_stage_meta(lnp)["denoiser"]["classical"]["h"] == 20.0 != CLASSICAL_H
    ck = fake_checkpoint(tmp_path / "ck.pth", read_stage_meta(lnp), load_size=SIZE, crop_size=SIZE)
    pipe = build_feature_pipeline(torch.load(ck, weights_only=False)["features"])
    assert pipe.denoiser.h == 20.0  # train-free: the rebuilt denoiser has the recorded strength
    f = sorted((raw / "test").rglob("*.jpg"))[0]
    want = np.asarray(load_sample_image(lnp / f.relative_to(raw).with_suffix(".png")), dtype=np.float32)
    assert np.mean(np.asarray(pipe.from_path(f), dtype=np.float32) != want) <= 1e-3
    pipe.denoiser.h = CLASSICAL_H  # the default strength would give other features: the check can fail
    assert np.mean(np.asarray(pipe.from_path(f), dtype=np.float32) != want) > 0.01
    by_files = predict_folder(ck, lnp / "test")
    by_raw = predict_folder(ck, raw / "test", raw=True)
    a = dict(zip(by_files["path"].map(lambda p: Path(p).stem), by_files["p_fake"]))
    b = dict(zip(by_raw["path"].map(lambda p: Path(p).stem), by_raw["p_fake"]))
    assert len(a) == 4 and a.keys() == b.keys()
    np.testing.assert_allclose([b[k] for k in sorted(a)], [a[k] for k in sorted(a)], atol=1e-5)
