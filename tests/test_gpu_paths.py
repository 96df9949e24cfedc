"""The GPU fast paths, checked on CPU: batched SAM, checked reduced precision, LNP pipeline, AMP training."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from dfig import accel
from dfig.core.denoise import CycleISPDenoiser
from dfig.data.synthetic import make_image
from dfig.stages import lnp as L
from dfig.stages import segment as S


def tiny_sam(img_size: int = 128, dim: int = 32, seed: int = 0):
    """A small Sam built from segment-anything's public classes (same prompt encoder/decoder code)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    e = img_size // 16
    enc = ImageEncoderViT(
        img_size=img_size,
        patch_size=16,
        embed_dim=48,
        depth=2,
        num_heads=2,
        mlp_ratio=4,
        out_chans=dim,
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=4,
        global_attn_indexes=[1],
    )
    pe = PromptEncoder(
        embed_dim=dim, image_embedding_size=(e, e), input_image_size=(img_size, img_size), mask_in_chans=8
    )
    dec = MaskDecoder(
        num_multimask_outputs=3,
        transformer_dim=dim,
        iou_head_depth=3,
        iou_head_hidden_dim=32,
        transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
    )
    return Sam(enc, pe, dec, pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def faces(n: int = 5, size: int = 96) -> list[np.ndarray]:
    imgs = [make_image(0, "train", ("real", "fake")[i % 2], i, size) for i in range(n)]
    imgs.append(np.ascontiguousarray(imgs[0][: size // 2]))  # another size and aspect ratio
    return imgs


# ---------------------------------------------------------------------------------------------
# precision decisions


def test_choose_precision_keeps_candidate_only_when_check_passes() -> None:
    calls: list[str] = []

    def run(p: str) -> str:
        calls.append(p)
        return p

    rec, out = accel.choose_precision(run, lambda a, b: {"passed": True}, "cpu", "auto", candidate="bf16")
    assert (rec["precision"], out, rec["checked"], calls) == ("bf16", "bf16", True, ["fp32", "bf16"])
    rec, out = accel.choose_precision(run, lambda a, b: {"passed": False, "corr": 0.5}, "cpu", "auto", "bf16")
    assert (rec["precision"], out, rec["agreement"]["corr"]) == ("fp32", "fp32", 0.5)
    calls.clear()
    rec, out = accel.choose_precision(run, lambda a, b: {"passed": True}, "cpu", "auto")  # CPU: no check
    assert (rec["precision"], rec["checked"], calls) == ("fp32", False, ["fp32"])
    rec, _ = accel.choose_precision(run, lambda a, b: {"passed": False}, "cpu", "fp16")  # explicit: unchecked
    assert rec["precision"] == "fp16" and not rec["checked"]
    with pytest.raises(ValueError, match="precision"):
        accel.choose_precision(run, lambda a, b: {}, "cpu", "fp8")


def test_reduced_precision_and_autocast_on_cpu() -> None:
    assert accel.reduced_precision("cpu") == "bf16"
    with accel.autocast("cpu", "bf16"):
        y = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert y.dtype == torch.bfloat16
    with accel.autocast("cpu", "fp32"):
        assert torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4)).dtype == torch.float32


def _small_cycleisp(seed: int = 0) -> CycleISPDenoiser:
    torch.manual_seed(seed)
    return L.prepare(CycleISPDenoiser(n_feats=16, n_groups=1, n_blocks=1), "cpu")


def test_lnp_precision_decision_bf16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    den = _small_cycleisp()
    imgs = [make_image(0, "train", "real", i, 32) for i in range(2)]
    ref = L.lnp_batch(den, imgs, "cpu", "fp32")
    rec, res = L.check_lnp_precision(den, imgs, "cpu", "auto", candidate="bf16")
    ag = rec["agreement"]
    assert rec["checked"] and rec["candidate"] == "bf16"
    assert ag["passed"] == (ag["corr"] >= L.LNP_MIN_CORR and ag["png_identical"] >= L.LNP_MIN_PNG_IDENTICAL)
    assert rec["precision"] == ("bf16" if ag["passed"] else "fp32")
    assert 0.9 < ag["corr"] <= 1.0 and ag["max_abs_diff"] > 0  # bf16 really ran
    # a check that cannot pass -> fp32 and fp32's residuals
    monkeypatch.setattr(L.extract, "LNP_MIN_CORR", 1.01)
    rec, res = L.check_lnp_precision(den, imgs, "cpu", "auto", candidate="bf16")
    assert rec["precision"] == "fp32" and not rec["agreement"]["passed"]
    np.testing.assert_array_equal(res, ref)
    rec, res = L.check_lnp_precision(den, imgs, "cpu")  # auto on CPU: fp32 without a check
    assert rec["precision"] == "fp32" and not rec["checked"]


def test_lnp_tree_records_precision_and_uses_workers(tmp_path: Path) -> None:
    import cv2

    for i in range(3):
        d = tmp_path / "in" / "train" / ("real", "fake")[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i}.png"), make_image(0, "train", "real", i, 24))
    (tmp_path / "in" / "train" / "real" / "bad.png").write_bytes(b"not an image")
    den = _small_cycleisp()
    rep = L.extract_tree(tmp_path / "in", tmp_path / "out", den, batch_size=2, progress=False, workers=1)
    assert rep.done == 3 and len(rep.failed) == 1 and "bad.png" in str(rep.failed[0][0])
    meta = json.loads((tmp_path / "out" / "dfig_stage.json").read_text())
    assert meta["precision"] == "fp32" and meta["precision_check"]["requested"] == "auto"
    img = cv2.imread(str(tmp_path / "in" / "train" / "real" / "0.png"))
    want = L.compat_encode(L.lnp_batch(den, [img], "cpu")[0])
    got = cv2.imread(str(tmp_path / "out" / "train" / "real" / "0.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got, want)


def test_lnp_resume_keeps_the_trees_precision(tmp_path: Path) -> None:
    import cv2

    d = tmp_path / "in" / "train" / "real"
    d.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(d / f"{i}.png"), make_image(0, "train", "real", i, 16))
    den = _small_cycleisp()
    L.extract_tree(tmp_path / "in", tmp_path / "out", den, progress=False, precision="bf16", shard=(0, 2))
    rep = L.extract_tree(tmp_path / "in", tmp_path / "out", den, progress=False)  # auto: resume in bf16
    assert rep.done == 1 and rep.skipped_existing == 2
    meta = json.loads((tmp_path / "out" / "dfig_stage.json").read_text())
    assert meta["precision"] == "bf16" and "existing tree" in meta["precision_check"]["reason"]
    with pytest.raises(ValueError, match="precision"):
        L.extract_tree(tmp_path / "in", tmp_path / "out", den, progress=False, precision="fp32")


def test_resolve_device_is_the_one_resolver() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert accel.resolve_device(None).type == accel.resolve_device("auto").type == want
    assert accel.resolve_device(" AUTO ").type == want
    assert accel.resolve_device("cpu") == torch.device("cpu")
    assert accel.resolve_device(torch.device("cuda:1")) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="unknown device 'gpu'; use auto, cpu, cuda"):
        accel.resolve_device("gpu")


def test_seed_everything_repeats_every_stream() -> None:
    import random

    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))  # noqa: NPY002

    accel.seed_everything(2**40 + 3)  # larger than NumPy's seed range: reduced, not an error
    a = draw()
    accel.seed_everything(2**40 + 3)
    assert draw() == a
    accel.seed_everything(4)
    assert draw() != a


def test_stack_pinned_without_pinning_is_a_plain_stack() -> None:
    a = [np.full((2, 3), i, np.uint8) for i in range(3)]
    t = accel.stack_pinned(a, pin=False)
    assert t.dtype == torch.uint8 and t.shape == (3, 2, 3) and int(t[2, 1, 1]) == 2


# ---------------------------------------------------------------------------------------------
# SAM


@pytest.mark.parametrize("prompt", ["points", "box", "auto"])
def test_batched_sam_gives_the_masks_of_one_image_at_a_time(prompt: str) -> None:
    seg = S.SamSegmenter(tiny_sam(), prompt=prompt, batch_size=4)
    imgs = faces(2 if prompt == "auto" else 5)  # auto: 256 point prompts per image
    one = [seg.segment(im) for im in imgs]  # segment-anything's own SamPredictor, one image each
    before = seg.encoder_passes
    many = seg.segment_batch(imgs)
    assert seg.encoder_passes - before == len(imgs)  # still exactly one encoder pass per image
    for a, b in zip(one, many):
        assert a.mask.shape == b.mask.shape
        assert S.mask_iou(a.mask, b.mask) >= 0.999
        assert abs(a.score - b.score) < 1e-4
        assert a.info == b.info
    assert seg.precision_record["precision"] == "fp32" and not seg.precision_record["checked"]


def test_sam_precision_check_bf16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    seg = S.SamSegmenter(tiny_sam(), prompt="box")
    imgs = faces(3)
    rec, res = S.check_sam_precision(seg, imgs, requested="auto", candidate="bf16")
    ag = rec["agreement"]
    assert rec["checked"] and ag["n_images"] == len(imgs) and 0.0 <= ag["mask_iou_min"] <= 1.0
    assert rec["precision"] == ("bf16" if ag["mask_iou_min"] >= S.SAM_MIN_MASK_IOU else "fp32")
    assert rec["extra_encoder_passes"] == len(imgs)
    monkeypatch.setattr(S.sam, "SAM_MIN_MASK_IOU", 1.01)
    rec, res = S.check_sam_precision(seg, imgs, requested="auto", candidate="bf16")
    assert rec["precision"] == "fp32" and not rec["agreement"]["passed"]
    ref = [seg.segment(im) for im in imgs]
    assert all(S.mask_iou(a.mask, b.mask) >= 0.999 for a, b in zip(ref, res))


def test_segment_tree_batched_with_workers(tmp_path: Path) -> None:
    from PIL import Image

    imgs = faces(4)
    for i, im in enumerate(imgs):
        d = tmp_path / "raw" / "val" / ("real", "fake")[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(d / f"{i}.png")
    (tmp_path / "raw" / "val" / "real" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    seg = S.SamSegmenter(tiny_sam(), prompt="points", batch_size=3)
    rec = {"name": seg.name, "precision": seg.precision_record}
    items = sorted((tmp_path / "raw").rglob("*.*"))
    streamed = list(S.segment_stream(items, seg, workers=2))
    assert [p for p, *_ in streamed] == items  # order kept
    assert sum(isinstance(r, str) for *_, r in streamed) == 1
    rep = S.segment_tree(tmp_path / "raw", tmp_path / "faces", seg, record=rec, progress=False)
    assert rep.done == len(imgs) and len(rep.failed) == 1
    meta = json.loads((tmp_path / "faces" / "dfig_stage.json").read_text())
    assert meta["segmenter"]["precision"]["precision"] == "fp32"
    for i, im in enumerate(imgs):
        rel = Path("val") / ("real", "fake")[i % 2] / f"{i}.png"
        m = np.asarray(Image.open(tmp_path / "masks" / rel)) > 127
        assert S.mask_iou(m, seg.segment(im).mask) >= 0.999


# ---------------------------------------------------------------------------------------------
# training


def test_amp_training_step_on_cpu_keeps_spectra_float32() -> None:
    from dfig.core.models import build_detector
    from dfig.stages.train import amp_precision, make_scaler, train_step

    assert amp_precision("cpu", True) == "bf16" and amp_precision("cpu", False) == "fp32"
    assert make_scaler("cpu", True) is None  # bf16 needs no loss scaling
    torch.manual_seed(0)
    model = build_detector("mobilev2", 0).to(memory_format=torch.channels_last)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0.0, 1.0])
    seen: dict[str, torch.dtype] = {}
    orig_fft2 = torch.fft.fft2

    def spy_fft2(t: torch.Tensor, *a, **k) -> torch.Tensor:
        seen["fft_in"] = t.dtype
        return orig_fft2(t, *a, **k)

    with accel.autocast("cpu", "bf16"):
        amp, phase = model.spectra(x)
        stem = model.backbone.features[0][0](torch.randn(1, model.in_channels, 8, 8))
    assert amp.dtype == torch.float32 and phase.dtype == torch.float32
    assert stem.dtype == torch.bfloat16  # autocast really on
    ref_amp, _ = model.spectra(x)
    torch.testing.assert_close(amp, ref_amp)  # the spectra are the fp32 ones
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.fft.fft2 = spy_fft2
    try:
        loss = train_step(model, (x, y), opt, torch.device("cpu"), None, amp=True, channels_last=True)
    finally:
        torch.fft.fft2 = orig_fft2
    assert seen["fft_in"] == torch.float32
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_with_amp_channels_last_and_workers_on_cpu(tmp_path: Path) -> None:
    from test_train import make_lnp_tree, tiny_opts

    from dfig.stages.train import train

    tree = make_lnp_tree(tmp_path / "lnp", n_train=8, n_eval=4, size=36)
    opts = tiny_opts(
        tree, tmp_path / "ck", epochs=1, amp=True, channels_last=True, workers=1, evaluate_test=False
    )
    res = train(opts)
    assert res["precision"] == "bf16" and res["epochs"] == 1
    assert np.isfinite(res["last_epoch_log"]["train_loss"])


def test_cpu_settings_and_flags() -> None:
    before = torch.get_num_threads()
    try:
        rec = accel.configure_cpu(1)
        assert rec["threads"] == 1 == torch.get_num_threads() and rec["cores"] >= 1
    finally:
        torch.set_num_threads(before)
    f = accel.cpu_flags()
    assert set(f["flags"]) <= set(accel.CPU_FLAGS_OF_INTEREST) and f["torch_capability"]
    m = accel.fast_cpu_model(torch.nn.Conv2d(3, 4, 3))
    assert m.weight.is_contiguous(memory_format=torch.channels_last)


def test_bench_train_cpu_comparison_runs_and_writes_json(tmp_path: Path) -> None:
    """The CPU comparison of benchmarks/bench_train.py on a few tiny images: ratio, GFLOP/s, limit."""
    import importlib
    import sys

    from PIL import Image

    from dfig import paths

    for cls in ("real", "fake"):
        (tmp_path / "img" / "train" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(make_image(0, "train", cls, i, size=48)).save(
                tmp_path / "img" / "train" / cls / f"{i}.png"
            )
    sys.path.insert(0, str(paths.root() / "benchmarks"))
    try:
        bench = importlib.import_module("bench_train")
        argv = [
            "--device",
            "cpu",
            "--images",
            str(tmp_path / "img"),
            "--crop_size",
            "32",
            "--batch_size",
            "4",
        ]
        argv += ["--steps", "2", "--rounds", "2", "--warmup", "0", "--n_images", "8", "--peak_seconds", "0.1"]
        res = bench.main([*argv, "--json", str(tmp_path / "b.json")])
    finally:
        sys.path.remove(str(paths.root() / "benchmarks"))
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["stage"] == "train-cpu" and saved["speedup"] == pytest.approx(res["speedup"])
    assert saved["naive_img_s"] > 0 and saved["ours_img_s"] > 0 and saved["conv_peak_gflops"] > 0
    assert saved["gflops"]["ours"] > 0 and saved["limit"] and saved["cpu_flags"]["torch_capability"]
    assert saved["settings"]["cache_mb"] > 0 and saved["settings"]["ours"]["rounds"] == 2
