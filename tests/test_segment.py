"""dfig.stages.segment: SAM loading (strict keys), one encoder pass per image, prompts, fallbacks, tree runs."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfig.data.images import BadImageError
from dfig.fallback import FallbackNotAllowed, FallbackWarning
from dfig.io import read_stage_meta
from dfig.stages import segment as S
from dfig.weights import MissingWeightsError, WrongWeightsError

SAM_B_FILE = "sam_vit_b_01ec64.pth"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def sam_b_state() -> dict[str, torch.Tensor]:
    """A randomly initialised SAM vit_b state dict (fixed seed)."""
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    return sam_model_registry["vit_b"]().state_dict()


@pytest.fixture(scope="module")
def sam_b_file(tmp_path_factory: pytest.TempPathFactory, sam_b_state: dict[str, torch.Tensor]) -> Path:
    """Saved as the official file is: a plain state dict, under the official name."""
    p = tmp_path_factory.mktemp("weights") / SAM_B_FILE
    torch.save(sam_b_state, p)
    return p


@pytest.fixture(scope="module")
def tiny_sam():
    """A very small SAM (same modules and API, 32-dim 2-block encoder) for cheap prompt tests."""
    from segment_anything.build_sam import _build_sam

    torch.manual_seed(0)
    return _build_sam(
        encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1]
    )


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _count_encoder(model) -> list[int]:
    calls = [0]
    model.image_encoder.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _make_tree(root: Path) -> Path:
    """Tiny two-split dataset with one bad (0-byte) file."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for cls in ("real", "fake"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)).save(d / f"{cls}{i}.jpg")
    (root / "train" / "fake" / "broken.jpg").write_bytes(b"")
    return root


def _read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------------
# geometry and fallbacks


@pytest.mark.parametrize("hw", [(256, 256), (128, 96), (1024, 1024)])
def test_prior_mask_geometry(hw: tuple[int, int]) -> None:
    h, w = hw
    m = S.prior_mask(h, w)
    assert m.shape == (h, w) and m.dtype == bool
    assert (
        m[h // 2, w // 2] and m[int(0.47 * h), int(0.375 * w)] and m[int(0.71 * h), w // 2]
    )  # centre, eye, mouth
    assert not (m[0, 0] or m[0, -1] or m[-1, 0] or m[-1, -1])
    assert not m[: int(0.13 * h)].any() and not m[int(0.91 * h) :].any()  # inside the face box only
    assert not m[:, : int(0.17 * w)].any() and not m[:, int(0.83 * w) + 1 :].any()
    # ellipse area pi*a*b with a = 0.32 W, b = 0.38 H: the same fraction at every size
    assert m.mean() == pytest.approx(math.pi * 0.32 * 0.38, abs=0.01)


def test_face_box_scales() -> None:
    assert S.face_box(256, 256) == pytest.approx([0.18 * 256, 0.14 * 256, 0.82 * 256, 0.90 * 256])
    assert S.face_box(100, 200) == pytest.approx([36.0, 14.0, 164.0, 90.0])


def test_prior_and_none_segmenters() -> None:
    rgb = _img(64, 48)
    p = S.PriorSegmenter().segment(rgb)
    assert p.mask.shape == (64, 48) and p.mask.dtype == bool and math.isnan(p.score)
    assert np.array_equal(p.mask, S.prior_mask(64, 48))
    n = S.WholeImageSegmenter().segment(rgb)
    assert n.mask.all() and n.mask.shape == (64, 48)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        S.PriorSegmenter().segment(rgb.astype(np.float32))


def test_apply_mask_zeroes_background() -> None:
    rgb = _img(8, 6) | 1  # no zero pixels
    mask = np.zeros((8, 6), dtype=bool)
    mask[2:5, 1:4] = True
    out = S.apply_mask(rgb, mask)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert np.array_equal(out[mask], rgb[mask])
    assert (out[~mask] == 0).all()
    with pytest.raises(ValueError, match="does not match"):
        S.apply_mask(rgb, mask[:, :5])


def test_fallbacks_recorded_and_refused_in_paper_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no_weights"
    empty.mkdir()
    with pytest.warns(FallbackWarning, match="prior"):
        seg, rec = S.build_segmenter("sam", model_type="vit_b", checkpoint=empty)
    assert isinstance(seg, S.PriorSegmenter) and rec["method"] == "prior"
    assert rec["fallback"]["instead_of"].startswith("SAM vit_b") and SAM_B_FILE in rec["fallback"]["reason"]
    assert rec["requested"] == {"method": "sam", "model_type": "vit_b", "prompt": "points"}
    with pytest.warns(FallbackWarning):
        seg, rec = S.build_segmenter("none")
    assert seg.name == "none" and rec["fallback"]["fallback"].startswith("none")

    monkeypatch.setenv("DFIG_ALLOW_FALLBACKS", "0")
    with pytest.raises(FallbackNotAllowed, match=SAM_B_FILE):
        S.build_segmenter("sam", model_type="vit_b", checkpoint=empty)
    with pytest.raises(FallbackNotAllowed):
        S.build_segmenter("prior")


def test_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)  # no silent fallback for a named file
        with pytest.raises(MissingWeightsError, match="not found"):
            S.build_segmenter("sam", model_type="vit_b", checkpoint=tmp_path / SAM_B_FILE)


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown segmenter"):
        S.build_segmenter("grabcut")
    with pytest.raises(ValueError, match="unknown SAM prompt"):
        S.build_segmenter("sam", prompt="scribble")
    with pytest.raises(ValueError, match="unknown SAM model type"):
        S.build_segmenter("sam", model_type="vit_x")


# ---------------------------------------------------------------------------------------------
# SAM checkpoint loading (vit_b, random weights saved as the official file)


def test_sam_vit_b_loads_strictly(sam_b_file: Path, sam_b_state: dict[str, torch.Tensor]) -> None:
    # the random file is not the official one (size differs): the size check says so ...
    with pytest.raises(WrongWeightsError, match="wrong size"):
        S.build_segmenter("sam", model_type="vit_b", checkpoint=sam_b_file)
    # ... and verify="none" loads it with the strict key check
    seg, rec = S.build_segmenter("sam", model_type="vit_b", checkpoint=sam_b_file, verify="none")
    assert isinstance(seg, S.SamSegmenter) and seg.name == "sam_vit_b_points"
    assert rec["method"] == "sam" and rec["fallback"] is None and rec["model_type"] == "vit_b"
    w = rec["weights"]
    assert w["file"] == SAM_B_FILE and len(w["sha256"]) == 64 and w["official_size"] is False
    loaded = seg.model.state_dict()
    assert set(loaded) == set(sam_b_state)
    for k in ("image_encoder.patch_embed.proj.weight", "mask_decoder.iou_prediction_head.layers.2.bias"):
        assert torch.equal(loaded[k], sam_b_state[k])


def test_sam_wrong_keys_listed(tmp_path: Path, sam_b_state: dict[str, torch.Tensor]) -> None:
    bad = dict(sam_b_state)
    del bad["mask_decoder.iou_token.weight"]
    bad["extra.head.weight"] = torch.zeros(2)
    p = tmp_path / SAM_B_FILE
    torch.save(bad, p)
    with pytest.raises(WrongWeightsError) as ei:
        S.load_sam("vit_b", p)
    msg = str(ei.value)
    assert str(p) in msg and "missing keys (1): mask_decoder.iou_token.weight" in msg
    assert "unexpected keys (1): extra.head.weight" in msg and "--model_type" in msg
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(WrongWeightsError, match="is not a checkpoint"):
        S.load_sam("vit_b", p)


# ---------------------------------------------------------------------------------------------
# prompts on a tiny SAM: one encoder pass per image


@pytest.mark.parametrize("prompt", ["points", "box", "auto"])
def test_prompts_one_encoder_pass(tiny_sam, prompt: str) -> None:
    calls = _count_encoder(tiny_sam)
    seg = S.SamSegmenter(tiny_sam, prompt=prompt, model_type="tiny", auto_options={"points_per_side": 2})
    for i, hw in enumerate([(48, 64), (80, 80)]):
        res = seg.segment(_img(*hw, seed=i))
        assert res.mask.shape == hw and res.mask.dtype == bool
        assert np.isfinite(res.score)
    assert calls[0] == 2 and seg.encoder_passes == 2
    assert set(seg.last_timing) == {"encoder_s", "decode_s"}
    if prompt == "box":
        assert res.info["box"] == pytest.approx(S.face_box(80, 80).tolist())
    if prompt == "auto":
        assert "box_source" in res.info and len(res.info["box"]) == 4


# ---------------------------------------------------------------------------------------------
# segment_tree


def test_segment_tree_prior(tmp_path: Path) -> None:
    raw = _make_tree(tmp_path / "raw")
    out = tmp_path / "work" / "faces"
    with pytest.warns(FallbackWarning):
        seg, rec = S.SEGMENTERS["prior"](allow_fallback=True)
    rep = S.segment_tree(raw, out, seg, record=rec, progress=False)
    assert rep.done == 8 and rep.skipped_existing == 0
    assert len(rep.failed) == 1 and rep.failed[0][0].endswith("broken.jpg") and "empty" in rep.failed[0][1]

    faces = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(faces) == 8 and "train/real/real0.png" in faces and "val/fake/fake1.png" in faces
    masks_root = tmp_path / "work" / "masks"  # sibling of faces/
    assert sorted(p.relative_to(masks_root).as_posix() for p in masks_root.rglob("*.png")) == faces
    m = np.asarray(Image.open(masks_root / "train/real/real0.png"))
    assert m.shape == (40, 32) and set(np.unique(m)) == {0, 255}
    assert np.array_equal(m == 255, S.prior_mask(40, 32))
    face = np.asarray(Image.open(out / "train/real/real0.png").convert("RGB"))
    src = np.asarray(Image.open(raw / "train/real/real0.jpg").convert("RGB"))
    assert np.array_equal(face, S.apply_mask(src, m == 255))  # lossless PNG: exact

    rows = _read_rows(out / S.CSV_NAME)
    assert sorted(rows) == faces
    r = rows["train/real/real0.png"]
    assert float(r["mask_area"]) == pytest.approx(S.prior_mask(40, 32).mean(), abs=1e-5)
    assert r["score"] == "nan" and r["segmenter"] == "prior"

    meta = read_stage_meta(out)
    assert meta["stage"] == "segmentation" and meta["segmenter"]["fallback"]["fallback"].startswith("prior")
    assert meta["counts"]["faces_in_csv"] == 8 and meta["counts"]["this_run"]["done"] == 8
    assert meta["input"] == {} and meta["face_format"] == "png"
    assert not any(p.name.endswith(".part") or ".part." in p.name for p in tmp_path.rglob("*"))
    assert sorted(p.name for p in (raw / "train/real").iterdir()) == [
        "real0.jpg",
        "real1.jpg",
    ]  # input untouched

    rep2 = S.segment_tree(raw, out, seg, record=rec, progress=False)
    assert rep2.done == 0 and rep2.skipped_existing == 8 and len(rep2.failed) == 1
    assert _read_rows(out / S.CSV_NAME) == rows

    # a face whose mask was lost is redone; a row lost from the CSV is recovered from its mask
    (masks_root / "val/real/real1.png").unlink()
    lines = (out / S.CSV_NAME).read_text().splitlines()
    (out / S.CSV_NAME).write_text("\n".join(x for x in lines if not x.startswith("train/fake/fake0")) + "\n")
    rep3 = S.segment_tree(raw, out, seg, record=rec, progress=False)
    assert rep3.done == 1 and rep3.skipped_existing == 7
    rows3 = _read_rows(out / S.CSV_NAME)
    assert sorted(rows3) == faces and float(rows3["train/fake/fake0.png"]["mask_area"]) == pytest.approx(
        float(rows["train/fake/fake0.png"]["mask_area"]), abs=1e-5
    )

    # resuming with another segmenter would mix methods: refused
    with pytest.warns(FallbackWarning):
        none_seg, none_rec = S.build_segmenter("none")
    with pytest.raises(ValueError, match="mix methods"):
        S.segment_tree(raw, out, none_seg, record=none_rec, progress=False)


def test_segment_tree_options(tmp_path: Path) -> None:
    raw = _make_tree(tmp_path / "raw")
    seg = S.WholeImageSegmenter()
    with pytest.raises(BadImageError, match="broken.jpg"):
        S.segment_tree(raw, tmp_path / "strict", seg, policy="strict", progress=False)
    out = tmp_path / "jpgfaces"
    rep = S.segment_tree(raw, out, seg, face_format="jpg", shard=(1, 2), progress=False)
    assert rep.done + len(rep.failed) == 4  # 9 files, shard 1/2 takes the 2nd, 4th, ...
    assert all(p.suffix == ".jpg" for p in out.rglob("*.jpg")) and len(list(out.rglob("*.jpg"))) == rep.done
    assert (tmp_path / "jpgfaces_masks").is_dir()  # default: <output_dir>_masks
    assert read_stage_meta(out)["jpeg_quality"] == 95
    with pytest.raises(ValueError, match="outside"):
        S.segment_tree(raw, out, seg, mask_dir=out / "masks", progress=False)
    with pytest.raises(ValueError, match="inside the input"):
        S.segment_tree(raw, raw / "faces", seg, progress=False)


def test_cli_prior(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _make_tree(tmp_path / "raw")
    out = tmp_path / "faces"
    with pytest.warns(FallbackWarning):
        rc = S.main(
            ["--input_dir", str(raw), "--output_dir", str(out), "--segmenter", "prior", "--no_progress"]
        )
    txt = capsys.readouterr().out
    assert rc == 0 and "wrote 8" in txt and "failed 1" in txt and "broken.jpg" in txt and "FALLBACK" in txt
    assert len(list((tmp_path / "masks").rglob("*.png"))) == 8


# ---------------------------------------------------------------------------------------------
# SAM vit_b (random weights) on real faces


@pytest.mark.slow
def test_sam_vit_b_on_face_sample(sample_dir: Path, sam_b_file: Path) -> None:
    seg, rec = S.build_segmenter("sam", model_type="vit_b", checkpoint=sam_b_file, verify="none")
    calls = _count_encoder(seg.model)
    files = [sorted((sample_dir / "val" / c).glob("*.jpg"))[0] for c in ("real", "fake")]
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        res = seg.segment(rgb)
        assert res.mask.shape == rgb.shape[:2] and res.mask.dtype == bool and np.isfinite(res.score)
    assert calls[0] == len(files) == 2
