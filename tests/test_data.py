"""dfig.data: layout and labels, robust loading, bad files, transforms, datasets and loaders."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dfig.data import (
    BadImageError,
    Sample,
    check_files,
    discover,
    load_rgb,
)
from dfig.data.dataset import ImageDataset, class_balance, load_sample_image, make_loader
from dfig.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PERTURBATIONS,
    AugmentOptions,
    build_transform,
    perturb,
)
from dfig.runlog import RunReport

# ---------------------------------------------------------------------------------------------
# helpers


def _rand_img(h: int = 40, w: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _make_tree(root: Path, real: str = "real", fake: str = "fake", n: int = 3, size: int = 32) -> Path:
    for split in ("train", "val", "test"):
        for k, cls in enumerate((real, fake)):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                _rand_img(size, size, seed=100 * k + i).save(d / f"{cls}_{i}.png")
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int, bool]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mtime_ns, st.st_size, p.is_dir())
    return out


# ---------------------------------------------------------------------------------------------
# layout


@pytest.mark.parametrize("real,fake", [("real", "fake"), ("0_real", "1_fake")])
def test_discover_explicit_labels(tmp_path: Path, real: str, fake: str) -> None:
    root = _make_tree(tmp_path / "data", real, fake, n=2)
    found = discover(root)
    assert list(found) == ["train", "val", "test"]
    for split, samples in found.items():
        assert len(samples) == 4
        assert [str(s.path) for s in samples] == sorted(str(s.path) for s in samples)
        for s in samples:
            assert isinstance(s, Sample) and s.split == split
            # fake = 1 although "fake"/"1_fake" would not be class 1 in every alphabetical scheme
            assert (s.label, s.cls) == ((1, "fake") if s.path.parent.name == fake else (0, "real"))
    assert sum(s.label for s in found["train"]) == 2


def test_discover_missing_class_folder_names_it(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "data", n=1)
    for p in (root / "val" / "fake").iterdir():
        p.unlink()
    (root / "val" / "fake").rmdir()
    with pytest.raises(FileNotFoundError) as ei:
        discover(root)
    assert str(root / "val") in str(ei.value) and "fake" in str(ei.value)


def test_discover_missing_split_names_it(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "data", n=1)
    with pytest.raises(FileNotFoundError, match="split folder missing"):
        discover(root, splits=("train", "holdout"))


# ---------------------------------------------------------------------------------------------
# load_rgb: every mode -> RGB


def test_load_rgb_modes(tmp_path: Path) -> None:
    Image.new("L", (5, 4), 100).save(tmp_path / "l.png")
    pal = [0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * 759
    p = Image.new("P", (5, 4), 1)
    p.putpalette(pal)
    p.save(tmp_path / "p.png")
    pt = p.copy()
    pt.putpixel((0, 0), 2)
    pt.save(tmp_path / "pt.png", transparency=2)
    rgba = Image.new("RGBA", (5, 4), (10, 20, 30, 255))
    rgba.putpixel((1, 1), (200, 200, 200, 0))
    rgba.save(tmp_path / "rgba.png")
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.array([[0, 32768, 65535, 0, 0]] * 4, dtype=np.uint16)).save(tmp_path / "g16.png")

    out = {
        name: load_rgb(tmp_path / name)
        for name in ("l.png", "p.png", "pt.png", "rgba.png", "cmyk.jpg", "g16.png")
    }
    for name, im in out.items():
        assert im.mode == "RGB" and im.size == (5, 4), name
    a = {k: np.asarray(v) for k, v in out.items()}
    assert (a["l.png"] == 100).all()
    assert (a["p.png"] == [200, 10, 10]).all()
    assert a["pt.png"][0, 0].tolist() == [0, 0, 0]  # transparent -> black
    assert a["pt.png"][1, 1].tolist() == [200, 10, 10]
    assert a["rgba.png"][1, 1].tolist() == [0, 0, 0] and a["rgba.png"][0, 0].tolist() == [10, 20, 30]
    assert np.abs(a["cmyk.jpg"][2, 2].astype(int) - [255, 0, 0]).max() <= 3
    assert a["g16.png"][0, :3, 0].tolist() == [0, 128, 255]


def test_load_rgb_exif_rotation(tmp_path: Path) -> None:
    im = Image.new("RGB", (60, 30), (50, 100, 150))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    with Image.open(tmp_path / "rot.jpg") as raw:
        assert raw.size == (60, 30)
    out = load_rgb(tmp_path / "rot.jpg")
    assert out.size == (30, 60) and out.mode == "RGB"


# ---------------------------------------------------------------------------------------------
# bad files


@pytest.fixture
def bad_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """train/{real,fake} with 2 good files each and 5 bad ones (one unreadable through open())."""
    root = _make_tree(tmp_path / "data", n=2)
    d = root / "train" / "fake"
    buf = d / "full.jpg"
    _rand_img(64, 64).save(buf, quality=90)
    data = buf.read_bytes()
    buf.unlink()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "empty.png").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    (d / "dir.png").mkdir()
    locked = root / "train" / "real" / "locked.png"
    _rand_img().save(locked)
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):  # root can read chmod-000 files: simulate the refusal
        if isinstance(file, str | os.PathLike) and Path(file) == locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    bad = {d / "truncated.jpg", d / "empty.png", d / "text.jpg", d / "dir.png", locked}
    return {"root": root, "bad": bad}


def test_load_rgb_bad_files_named(bad_tree: dict) -> None:
    for p in bad_tree["bad"]:
        with pytest.raises(BadImageError) as ei:
            load_rgb(p)
        assert str(p) in str(ei.value) and ei.value.path == p
        assert "skip" in str(ei.value)  # says what to do


def test_check_files_policies(bad_tree: dict) -> None:
    root, bad = bad_tree["root"], bad_tree["bad"]
    samples = discover(root, splits=("train",))["train"]
    assert len(samples) == 9
    report = RunReport("check")
    good = check_files([s.path for s in samples], policy="skip", report=report)
    assert len(good) == 4 and not set(good) & bad
    assert {Path(p) for p, _ in report.failed} == bad
    d = report.to_dict()
    assert len(d["failed"]) == 5 and {Path(f["path"]).name for f in d["failed"]} == {
        "truncated.jpg",
        "empty.png",
        "text.jpg",
        "dir.png",
        "locked.png",
    }
    with pytest.raises(BadImageError) as ei:
        check_files([s.path for s in samples], policy="strict")
    assert Path(ei.value.path) in bad and str(ei.value.path) in str(ei.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root reading")
def test_unreadable_file_chmod(tmp_path: Path) -> None:  # pragma: no cover - only as non-root
    p = tmp_path / "x.png"
    _rand_img().save(p)
    p.chmod(0)
    try:
        with pytest.raises(BadImageError, match="permission denied"):
            load_rgb(p)
    finally:
        p.chmod(0o644)


def test_dataset_bad_files_and_input_tree_untouched(bad_tree: dict) -> None:
    root, bad = bad_tree["root"], bad_tree["bad"]
    before = _snapshot(root)
    samples = discover(root, splits=("train",))["train"]
    check_files([s.path for s in samples], policy="skip", report=RunReport("check"))
    tf = build_transform(AugmentOptions(load_size=32, crop_size=24), train=True, seed=0)
    ds = ImageDataset(samples, tf, policy="skip")
    assert len(ds) == 4
    assert {Path(p) for p, _ in ds.skipped} == bad and ds.report.done == 4
    assert len(ds.report.to_dict()["failed"]) == 5
    assert "FAILED" in ds.report.summary() and "truncated.jpg" in ds.report.summary()
    for x, y, i in make_loader(ds, batch_size=3, shuffle=True, seed=0):
        assert x.shape[1:] == (3, 24, 24) and x.dtype == torch.float32
        assert y.dtype == torch.float64 and i.dtype == torch.int64
    assert _snapshot(root) == before
    with pytest.raises(BadImageError) as ei:
        ImageDataset(samples, tf, policy="strict")
    assert Path(ei.value.path) in bad
    with pytest.raises(ValueError, match="policy"):
        ImageDataset(samples, tf, policy="ignore")


def test_dataset_lazy_skip_without_precheck(bad_tree: dict) -> None:
    samples = discover(bad_tree["root"], splits=("train",))["train"]
    tf = build_transform(AugmentOptions(load_size=32, crop_size=24), train=False)
    ds = ImageDataset(samples, tf, policy="skip", precheck=False)
    assert len(ds) == 9
    with pytest.warns(UserWarning, match="bad file skipped"):
        items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (3, 24, 24) for x, _, _ in items)
    assert all(ds.samples[i].path not in bad_tree["bad"] for _, _, i in items)
    assert {Path(p) for p, _ in ds.skipped} == bad_tree["bad"]
    strict = ImageDataset(samples, tf, policy="strict", precheck=False)
    bad_idx = next(i for i, s in enumerate(strict.samples) if s.path in bad_tree["bad"])
    with pytest.raises(BadImageError):
        strict[bad_idx]


# ---------------------------------------------------------------------------------------------
# the training reader (.npy clean LNPs)


def test_load_sample_image_npy(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(0, 0.02, (20, 30, 3)).astype(np.float16)
    np.save(tmp_path / "a.npy", arr)
    out = load_sample_image(tmp_path / "a.npy")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, arr.astype(np.float32))
    np.save(tmp_path / "chw.npy", arr.transpose(2, 0, 1))
    assert load_sample_image(tmp_path / "chw.npy").shape == (20, 30, 3)
    _rand_img().save(tmp_path / "b.png")
    assert isinstance(load_sample_image(tmp_path / "b.png"), Image.Image)

    full = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(full[: len(full) // 2])
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file at all")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "shape.npy", np.zeros((4, 4), np.float32))
    nan = arr.astype(np.float32)
    nan[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    for name, why in [
        ("trunc.npy", "not a valid .npy"),
        ("garbage.npy", "not a valid .npy"),
        ("empty.npy", "empty"),
        ("shape.npy", "expected HxWx3"),
        ("nan.npy", "NaN"),
    ]:
        with pytest.raises(BadImageError, match=why) as ei:
            load_sample_image(tmp_path / name)
        assert name in str(ei.value)


# ---------------------------------------------------------------------------------------------
# transforms


def test_transform_shapes_pil_and_array() -> None:
    opts = AugmentOptions(load_size=64, crop_size=56)
    img = _rand_img(90, 120)
    arr = np.random.default_rng(0).normal(0, 0.02, (90, 120, 3)).astype(np.float32)
    for train in (True, False):
        tf = build_transform(opts, train=train, seed=0)
        assert tf(img).shape == (3, 56, 56) and tf(img).dtype == torch.float32
        assert tf(arr).shape == (3, 56, 56)
    # shorter side -> load_size, aspect kept (no crop)
    no_crop = build_transform(AugmentOptions(load_size=64, no_crop=True), train=False, normalize="none")
    assert no_crop(img).shape == (3, 64, 85) and no_crop(arr).shape == (3, 64, 85)
    assert no_crop(_rand_img(120, 90)).shape == (3, 85, 64)
    with pytest.raises(TypeError):
        no_crop([1, 2, 3])
    with pytest.raises(ValueError, match="HxWx3"):
        no_crop(np.zeros((5, 5), np.float32))


def test_train_crop_random_but_reproducible() -> None:
    img = _rand_img(80, 80)
    opts = AugmentOptions(no_resize=True, crop_size=32)
    a = [build_transform(opts, train=True, seed=7)(img) for _ in range(2)]
    assert torch.equal(a[0], a[1])
    tf = build_transform(opts, train=True, seed=7)
    seq = [tf(img) for _ in range(6)]
    assert torch.equal(seq[0], a[0])
    assert any(not torch.equal(seq[0], s) for s in seq[1:])  # random positions / flips
    tf.reseed(7)
    assert torch.equal(tf(img), a[0])
    b = build_transform(opts, train=True, seed=8)
    assert any(not torch.equal(x, b(img)) for x in seq)
    # global torch RNG (seed=None) is reproducible under torch.manual_seed
    g = build_transform(opts, train=True)
    torch.manual_seed(3)
    r1 = [g(img) for _ in range(3)]
    torch.manual_seed(3)
    r2 = [g(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(r1, r2))


def test_eval_is_centre_crop_and_normalisation() -> None:
    arr = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    img = Image.fromarray(arr)
    opts = AugmentOptions(no_resize=True, crop_size=4)
    out = build_transform(opts, train=False, normalize="none")(img)
    expect = torch.from_numpy(arr[3:7, 4:8].astype(np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(out, expect)
    out_in = build_transform(opts, train=False, normalize="imagenet")(img)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(out_in, (expect - mean) / std)
    flat = build_transform(AugmentOptions(load_size=8, crop_size=8), train=False)(
        Image.new("RGB", (8, 8), (255, 0, 128))
    )
    torch.testing.assert_close(
        flat[:, 0, 0], (torch.tensor([1.0, 0.0, 128 / 255]) - mean[:, 0, 0]) / std[:, 0, 0]
    )
    lnp = np.random.default_rng(0).normal(0, 0.02, (10, 12, 3)).astype(np.float32)
    out_lnp = build_transform(
        AugmentOptions(no_resize=True, crop_size=4, lnp_scale=0.05), train=False, normalize="lnp_std"
    )(lnp)
    torch.testing.assert_close(out_lnp, torch.from_numpy(lnp[3:7, 4:8] / 0.05).permute(2, 0, 1))
    with pytest.raises(ValueError, match="normalize"):
        build_transform(opts, normalize="zscore")


def test_small_input_is_padded_with_warning() -> None:
    tf = build_transform(AugmentOptions(no_resize=True, crop_size=16), train=False, normalize="none")
    with pytest.warns(UserWarning, match="smaller than crop_size"):
        out = tf(Image.new("RGB", (10, 12), (255, 255, 255)))
    assert out.shape == (3, 16, 16)
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 0.0] and out[:, 8, 8].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("kind", ["blur", "jpeg", "jpeg_cv2"])
def test_blur_jpeg_probability(kind: str) -> None:
    img = _rand_img(48, 48, seed=3)
    base = {"no_resize": True, "no_crop": True, "no_flip": True}
    if kind == "blur":
        on, off = {"blur_prob": 1.0, "blur_sig": (1.0, 2.0)}, {"blur_prob": 0.0}
    else:
        meth = "cv2" if kind == "jpeg_cv2" else "pil"
        on, off = {"jpg_prob": 1.0, "jpg_qual": (30, 60), "jpg_method": meth}, {"jpg_prob": 0.0}
    ref = build_transform(AugmentOptions(**base), train=False, normalize="none")(img)
    changed = build_transform(AugmentOptions(**base, **on), train=True, normalize="none", seed=0)(img)
    same = build_transform(AugmentOptions(**base, **off), train=True, normalize="none", seed=0)(img)
    assert torch.equal(same, ref)
    assert (changed - ref).abs().mean() > 0.02
    if kind == "blur":  # blur lowers the variance of a noise image
        assert changed.std() < 0.8 * ref.std()


def test_augment_on_float_arrays() -> None:
    arr = np.random.default_rng(0).normal(0, 0.02, (32, 32, 3)).astype(np.float32)
    base = {"no_resize": True, "no_crop": True, "no_flip": True}
    with pytest.raises(ValueError, match="JPEG augmentation"):
        build_transform(AugmentOptions(**base, jpg_prob=0.5), train=True, normalize="none")(arr)
    blurred = build_transform(
        AugmentOptions(**base, blur_prob=1.0, blur_sig=(1.0, 1.0)), train=True, normalize="none", seed=0
    )(arr)
    assert blurred.std() < 0.6 * arr.std()
    # eval never augments, so JPEG options do not matter there
    out = build_transform(AugmentOptions(**base, jpg_prob=1.0), train=False, normalize="none")(arr)
    torch.testing.assert_close(out, torch.from_numpy(arr).permute(2, 0, 1))


def test_augment_options_validation() -> None:
    with pytest.raises(ValueError, match="jpg_method"):
        AugmentOptions(jpg_method="libjpeg")
    with pytest.raises(ValueError, match="blur_prob"):
        AugmentOptions(blur_prob=1.5)
    with pytest.raises(ValueError, match="jpg_qual"):
        AugmentOptions(jpg_qual=(50, 120))
    assert AugmentOptions(blur_sig=[0, 3]).to_dict()["blur_sig"] == (0.0, 3.0)


def test_perturbations() -> None:
    assert set(PERTURBATIONS) == {"jpeg", "blur", "downscale"}
    img = _rand_img(40, 50, seed=5)
    ref = np.asarray(img, dtype=np.float64)
    for kind, level in [("jpeg", 40), ("blur", 1.5), ("downscale", 0.5)]:
        out = perturb(img, kind, level)
        assert out.mode == "RGB" and out.size == img.size
        assert np.abs(np.asarray(out, dtype=np.float64) - ref).mean() > 5, kind
    assert np.array_equal(np.asarray(perturb(img, "blur", 0)), np.asarray(img))
    assert np.array_equal(np.asarray(perturb(img, "downscale", 1.0)), np.asarray(img))
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(img, "noise", 1)
    with pytest.raises(ValueError):
        perturb(img, "downscale", 2.0)


# ---------------------------------------------------------------------------------------------
# loaders


def _order(loader) -> list[int]:
    return [int(i) for _, _, idx in loader for i in idx]


def test_loader_seeded_order(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "data", n=6, size=16)
    samples = discover(root, splits=("train",))["train"]
    ds = ImageDataset(samples, build_transform(AugmentOptions(load_size=16, crop_size=16)))
    a = _order(make_loader(ds, batch_size=4, shuffle=True, seed=1))
    b = _order(make_loader(ds, batch_size=4, shuffle=True, seed=1))
    c = _order(make_loader(ds, batch_size=4, shuffle=True, seed=2))
    assert a == b and sorted(a) == list(range(12)) and a != c
    assert _order(make_loader(ds, batch_size=4, shuffle=False)) == list(range(12))
    dl = make_loader(ds, batch_size=5, shuffle=True, drop_last=True)
    assert [len(idx) for _, _, idx in dl] == [5, 5]
    x, y, idx = next(iter(make_loader(ds, batch_size=12, shuffle=False)))
    assert y.tolist() == [float(s.label) for s in ds.samples]


def test_loader_workers_reproducible_augmentation(tmp_path: Path) -> None:
    root = _make_tree(tmp_path / "data", n=4, size=24)
    samples = discover(root, splits=("train",))["train"]
    ds = ImageDataset(
        samples, build_transform(AugmentOptions(no_resize=True, crop_size=16), train=True, seed=0)
    )

    def run(seed: int) -> torch.Tensor:
        return torch.cat([x for x, _, _ in make_loader(ds, batch_size=4, shuffle=True, workers=2, seed=seed)])

    r1, r2 = run(5), run(5)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, run(6))


def test_class_balance() -> None:
    s = [Sample(Path(f"{i}.png"), int(i < 3), "train", "fake" if i < 3 else "real") for i in range(8)]
    cb = class_balance(s)
    assert cb == {"real": 5, "fake": 3, "n": 8, "fake_fraction": 3 / 8, "pos_weight": 5 / 3}


# ---------------------------------------------------------------------------------------------
# the real face sample (read in place; skipped when absent)


@pytest.mark.sample
def test_face_sample_layout_and_pipeline(sample_dir: Path) -> None:
    before = _snapshot(sample_dir / "val")
    found = discover(sample_dir)
    counts = {s: (sum(x.label == 0 for x in v), sum(x.label == 1 for x in v)) for s, v in found.items()}
    assert counts == {"train": (300, 300), "val": (100, 100), "test": (100, 100)}
    picks = found["val"][:3] + found["val"][-3:]
    assert [s.label for s in picks] == [1, 1, 1, 0, 0, 0]  # sorted by path: fake/ before real/
    ds = ImageDataset(picks, build_transform(AugmentOptions(), train=False))
    assert len(ds) == 6 and ds.skipped == []
    x, y, idx = next(iter(make_loader(ds, batch_size=6, shuffle=False)))
    assert x.shape == (6, 3, 224, 224) and y.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert -2.2 < float(x.min()) and float(x.max()) < 2.7  # ImageNet-normalised range
    assert _snapshot(sample_dir / "val") == before
