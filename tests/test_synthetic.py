"""dfig.data.synthetic: deterministic, labelled, face-like, and the classes carry a learnable trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from dfig.data import discover
from dfig.data.synthetic import GENERATOR, generate, is_synthetic, make_image
from dfig.io import read_stage_meta, write_stage_meta

SMALL = {"n_train": 3, "n_eval": 2, "size": 64}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default-size set (128 px, 48+48 train, 16+16 val/test)."""
    return generate(tmp_path_factory.mktemp("syn") / "raw")


def test_deterministic_byte_identical(tmp_path: Path) -> None:
    a = _files(generate(tmp_path / "a", seed=3, **SMALL))
    b = _files(generate(tmp_path / "b", seed=3, **SMALL))
    assert a == b and len(a) == 2 + 2 * (3 + 2 + 2)
    c = _files(generate(tmp_path / "c", seed=4, **SMALL))
    assert c.keys() == a.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))
    # one image's stream depends only on (seed, split, class, index), not on the counts
    bigger = _files(generate(tmp_path / "d", seed=3, n_train=5, n_eval=2, size=64))
    assert bigger["train/fake/fake_0002.png"] == a["train/fake/fake_0002.png"]


def test_counts_labels_meta(default_set: Path) -> None:
    found = discover(default_set)
    counts = {s: (sum(x.label == 0 for x in v), sum(x.label == 1 for x in v)) for s, v in found.items()}
    assert counts == {"train": (48, 48), "val": (16, 16), "test": (16, 16)}
    for s in found["train"]:
        assert s.label == (1 if s.cls == "fake" else 0) and s.path.parent.name == s.cls
        assert s.path.suffix == ".png" and s.path.name.startswith(s.cls)
    meta = read_stage_meta(default_set)
    assert meta["synthetic"] is True and meta["generator"] == GENERATOR and meta["seed"] == 0
    assert meta["params"] == {"seed": 0, "size": 128, "n_train": 48, "n_eval": 16}
    assert meta["counts"] == {
        "train": {"real": 48, "fake": 48},
        "val": {"real": 16, "fake": 16},
        "test": {"real": 16, "fake": 16},
    }
    assert "SYNTHETIC" in (default_set / "README.txt").read_text()
    with Image.open(found["val"][0].path) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (128, 128)
    assert not any(p.name.startswith(".") for p in default_set.parent.iterdir())  # no temp leftovers


def test_is_synthetic_follows_stage_chain(tmp_path: Path, default_set: Path) -> None:
    assert is_synthetic(default_set)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not is_synthetic(plain)
    derived = tmp_path / "lnp"
    write_stage_meta(
        derived, {"stage": "lnp", "input": {"stage": "segment", "input": read_stage_meta(default_set)}}
    )
    assert is_synthetic(derived)
    write_stage_meta(plain, {"stage": "lnp", "input": {"stage": "segment", "input": {}}})
    assert not is_synthetic(plain)


def test_rerun_overwrite_and_refusal(tmp_path: Path) -> None:
    root = generate(tmp_path / "raw", **SMALL)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert generate(root, **SMALL) == root  # same parameters: kept as is
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == mtimes
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate(root, seed=1, **SMALL)
    generate(root, seed=1, overwrite=True, **SMALL)
    assert read_stage_meta(root)["seed"] == 1 and len(list(root.rglob("*.png"))) == 14
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "keep.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="no dfig synthetic set"):
        generate(foreign, overwrite=True, **SMALL)
    assert (foreign / "keep.jpg").read_bytes() == b"x"
    with pytest.raises(ValueError, match="multiple of 4"):
        generate(tmp_path / "bad", size=66)


def _peak_statistic(img: np.ndarray) -> float:
    """Energy of a high-pass residual's spectrum on the N/2 row and column (and N/4), over its mean."""
    x = img.astype(np.float64).mean(axis=2)
    r = x - (np.roll(x, 1, 0) + np.roll(x, -1, 0) + np.roll(x, 1, 1) + np.roll(x, -1, 1)) / 4
    power = np.abs(np.fft.fft2(r)) ** 2
    n = x.shape[0]
    peaks = [
        power[n // 2, :].mean(),
        power[:, n // 2].mean(),
        power[n // 4, :].mean(),
        power[:, n // 4].mean(),
    ]
    return float(np.mean(peaks) / power.mean())


def test_classes_separable_by_residual_spectrum(default_set: Path) -> None:
    samples = discover(default_set, splits=("train",))["train"]
    imgs = [np.asarray(Image.open(s.path)) for s in samples]
    y = np.array([s.label for s in samples])
    stat = np.array([_peak_statistic(im) for im in imgs])
    assert roc_auc_score(y, stat) > 0.9
    # ... while the content is not a shortcut: brightness alone does not tell the classes apart
    brightness = np.array([im.mean() for im in imgs])
    assert abs(roc_auc_score(y, brightness) - 0.5) < 0.25
    # and the difference is subtle in pixel space: a few grey levels of residual in both classes
    noise = np.array([np.std(im.astype(float) - np.roll(im.astype(float), 1, 0)) for im in imgs])
    assert 1.0 < np.median(noise[y == 0]) < 12.0 and 1.0 < np.median(noise[y == 1]) < 12.0


def test_face_like_centre() -> None:
    """Each image has a skin-coloured face in the middle of the frame (for the segmentation stage)."""
    for cls in ("real", "fake"):
        for i in range(8):
            img = make_image(0, "val", cls, i, 128)
            assert img.shape == (128, 128, 3) and img.dtype == np.uint8
            centre = img[56:72, 56:72].astype(float)
            assert centre[..., 0].mean() > centre[..., 2].mean() + 10, (cls, i)  # skin: red > blue
