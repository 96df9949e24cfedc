"""dfig.data.cache: the in-memory training set gives the streaming path's tensors, bad files, the decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfig.data.cache import CachedDataset, cache_blocker, decide_cache, estimate_mb, prepare_image
from dfig.data.dataset import ImageDataset, load_sample_image
from dfig.data.images import BadImageError
from dfig.data.layout import Sample
from dfig.data.transforms import AugmentOptions, build_transform
from dfig.stages.train import center_region, region_reader


def _samples(root: Path, kind: str, n: int = 4, size: int = 48) -> list[Sample]:
    """``n`` images per class: ``png`` (uint8), ``f16`` / ``f32`` (clean-LNP-like signed .npy)."""
    rng = np.random.default_rng(1)
    out = []
    for label, cls in ((0, "real"), (1, "fake")):
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = size + i, size + 2 * i  # odd shapes: resize and centre crops must agree
            if kind == "png":
                p = d / f"{i}.png"
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
            else:
                p = d / f"{i}.npy"
                dtype = np.float16 if kind == "f16" else np.float32
                np.save(p, (rng.normal(0, 0.02, (h, w, 3))).astype(dtype))
            out.append(Sample(p, label, "train", cls))
    return out


def _pair(samples, opts, train, normalize, region=None, seed=None):
    reader = region_reader(load_sample_image, region)
    a = ImageDataset(samples, build_transform(opts, train, normalize, seed=seed), reader=reader)
    b = CachedDataset(samples, build_transform(opts, train, normalize, seed=seed), reader=reader)
    return a, b


CASES = [
    ("png", AugmentOptions(load_size=40, crop_size=32), "imagenet", None),
    ("png", AugmentOptions(crop_size=32, no_resize=True), "none", 44),
    ("f16", AugmentOptions(crop_size=32, no_resize=True), "lnp_std", 44),
    ("f16", AugmentOptions(load_size=40, crop_size=32), "lnp_std", None),
    ("f32", AugmentOptions(crop_size=56, no_resize=True), "lnp_std", None),  # padded
]


@pytest.mark.parametrize(("kind", "opts", "norm", "region"), CASES)
def test_eval_items_equal_the_streaming_transform(tmp_path: Path, kind, opts, norm, region) -> None:
    samples = _samples(tmp_path, kind)
    with pytest.warns(UserWarning) if opts.crop_size > 48 else _nothing():
        a, b = _pair(samples, opts, False, norm, region)
        for i in range(len(samples)):
            xa, ya, ia = a[i]
            xb, yb, ib = b[i]
            assert (ya, ia) == (yb, ib)
            assert xa.dtype == xb.dtype == torch.float32 and torch.equal(xa, xb)


@pytest.mark.parametrize(("kind", "opts", "norm", "region"), CASES)
def test_train_items_equal_the_streaming_transform_for_the_same_seed(
    tmp_path: Path, kind, opts, norm, region
) -> None:
    samples = _samples(tmp_path, kind)
    with pytest.warns(UserWarning) if opts.crop_size > 48 else _nothing():
        a, b = _pair(samples, opts, True, norm, region, seed=5)
        order = [3, 0, 7, 3, 5, 1, 1, 6, 2, 4] * 3
        xs_a = torch.stack([a[i][0] for i in order])
        xs_b = torch.stack([b[i][0] for i in order])
    assert torch.equal(xs_a, xs_b)
    assert len({x.numpy().tobytes() for x in xs_b}) > len(set(order))  # crops/flips vary


def test_train_crops_follow_the_global_rng_like_the_loader(tmp_path: Path) -> None:
    """Unseeded transforms (training, workers=0) draw from torch's global RNG: same seed, same batch."""
    samples = _samples(tmp_path, "f16")
    a, b = _pair(samples, AugmentOptions(crop_size=24, no_resize=True), True, "lnp_std")
    torch.manual_seed(11)
    xa = [a[i][0] for i in range(len(a))]
    torch.manual_seed(11)
    xb = [b[i][0] for i in range(len(b))]
    assert all(torch.equal(u, v) for u, v in zip(xa, xb))


def test_storage_is_uint8_for_images_and_lossless_float16_for_arrays(tmp_path: Path) -> None:
    o = AugmentOptions(crop_size=16, no_resize=True)
    assert prepare_image(Image.new("RGB", (20, 20)), o).dtype == torch.uint8
    half = np.random.default_rng(0).normal(0, 0.02, (20, 20, 3)).astype(np.float16).astype(np.float32)
    assert prepare_image(half, o).dtype == torch.float16
    full = np.full((20, 20, 3), 0.1 + 1e-7, dtype=np.float32)
    t = prepare_image(full, o)
    assert t.dtype == torch.float32 and torch.equal(t, torch.from_numpy(full).permute(2, 0, 1))


def test_bad_files_are_counted_and_named_or_raise_under_strict(tmp_path: Path) -> None:
    samples = _samples(tmp_path, "f16", n=2)
    empty = tmp_path / "fake" / "empty.npy"
    empty.write_bytes(b"")
    broken = tmp_path / "real" / "broken.npy"
    broken.write_bytes(b"not an array")
    bad = [Sample(empty, 1, "train", "fake"), Sample(broken, 0, "train", "real")]
    tf = build_transform(AugmentOptions(crop_size=16, no_resize=True), train=True, normalize="lnp_std")
    ds = CachedDataset(samples + bad, tf)
    assert len(ds) == len(samples) and ds.report.done == len(samples)
    assert {Path(p).name for p, _ in ds.skipped} == {"empty.npy", "broken.npy"}
    assert all(reason for _, reason in ds.skipped)
    with pytest.raises(BadImageError, match="empty.npy"):
        CachedDataset(bad + samples, tf, policy="strict")


def test_blur_or_jpeg_augmentation_cannot_be_cached(tmp_path: Path) -> None:
    o = AugmentOptions(crop_size=16, blur_prob=0.1)
    assert cache_blocker(o, train=True) and cache_blocker(o, train=False) is None
    with pytest.raises(ValueError, match="blur"):
        CachedDataset(_samples(tmp_path, "png", n=1), build_transform(o, train=True))


def test_decision_modes_and_size_limit() -> None:
    def boom() -> float:
        raise AssertionError("the estimate must not be computed")

    assert not decide_cache("off", "cpu", boom, None).use
    assert not decide_cache("auto", "cuda", boom, None).use
    d = decide_cache("on", "cpu", boom, "blur/JPEG augmentation")
    assert not d.use and "blur" in d.reason
    d = decide_cache("auto", "cpu", lambda: 900.0, None, max_mb=500)
    assert not d.use and "max_cache_mb=500" in d.reason and "\n" not in d.reason
    assert decide_cache("auto", "cpu", lambda: 100.0, None, max_mb=500).use
    assert decide_cache("on", "cuda", lambda: 100.0, None, max_mb=500).use
    with pytest.raises(ValueError, match="cache must be one of"):
        decide_cache("yes", "cpu", boom, None)


def test_estimate_matches_the_cache_size(tmp_path: Path) -> None:
    samples = _samples(tmp_path, "f16", n=3, size=40)
    o = AugmentOptions(crop_size=16, no_resize=True)
    reader = region_reader(load_sample_image, 32)
    est = estimate_mb(samples, reader, o, o, n_val=0)
    ds = CachedDataset(samples, build_transform(o, train=True), reader=reader)
    assert est * 2**20 == pytest.approx(ds.nbytes, rel=0.01)
    assert center_region(np.zeros((40, 50, 3)), 32).shape == (32, 32, 3)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_training_with_the_cache_equals_streaming(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One tiny CPU run each way: the same draws, so the same losses, val metrics and weights."""
    from dfig import io
    from dfig.stages.train import TrainOptions, load_checkpoint, train

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4), ("test", 2)):
        for cls, sd in (("real", 0.01), ("fake", 0.03)):
            d = tmp_path / "tree" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                np.save(d / f"{i}.npy", rng.normal(0, sd, (36, 36, 3)).astype(np.float16))
    io.write_stage_meta(tmp_path / "tree", {"stage": "lnp", "save_mode": "clean", "test_tree": True})
    runs = {}
    for mode in ("on", "off"):
        o = TrainOptions(
            name=mode, dataroot=str(tmp_path / "tree"), arch="mobilev2", train_mode=0, batch_size=4,
            load_size=0, center_region=32, crop_size=24, eval_crop_size=24, normalize="lnp_std",
            epochs=2, bn_recalibrate=2, checkpoints_dir=str(tmp_path / "ck"), num_threads=1, seed=0,
            progress=False, device="cpu", cache=mode, evaluate_test=False,
        )  # fmt: skip
        runs[mode] = train(o)
        assert f"cache: {mode}" in capsys.readouterr().out
    on, off = (load_checkpoint(runs[m]["paths"]["latest"]) for m in ("on", "off"))
    assert len(on["log"]) == 2
    for key in ("train_loss", "val_loss", "val_auc"):
        assert [r[key] for r in on["log"]] == [r[key] for r in off["log"]]
    assert all(torch.equal(v, off["model"][k]) for k, v in on["model"].items())


def test_cache_option_on_the_command_line_and_validated() -> None:
    from dfig.stages.train import TrainOptions, options_from_args

    o = options_from_args(["--dataroot", "D", "--cache", "off", "--max_cache_mb", "10"])
    assert (o.cache, o.max_cache_mb) == ("off", 10.0)
    with pytest.raises(ValueError, match="cache must be one of"):
        TrainOptions(dataroot="D", cache="yes").validate()
