"""dfig.report.fingerprint: the class-mean spectra of an LNP tree are the one class-mean spectrum of dfig.core.spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfig.core.spectra import amplitude_phase, mean_spectra_by_class, mean_spectrum
from dfig.report.fingerprint import class_mean_spectra, spectra_summary


def _tree(root: Path, sizes: dict[str, list[int]]) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays: dict[str, list[np.ndarray]] = {}
    for cls, ss in sizes.items():
        d = root / "test" / cls
        d.mkdir(parents=True)
        arrays[cls] = []
        for i, s in enumerate(ss):
            a = rng.normal(size=(s, s, 3)).astype(np.float32)
            np.save(d / f"{i:02d}.npy", a)
            arrays[cls].append(a)
    return arrays


def test_class_mean_spectra_of_a_tree(tmp_path: Path) -> None:
    arrays = _tree(tmp_path, {"real": [12, 12, 14], "fake": [12, 16]})
    means = class_mean_spectra(tmp_path, split="test", n=10)
    assert means["size"] == 12 and means["n"] == {"real": 3, "fake": 2}
    for cls, arrs in arrays.items():
        crops = [a[(a.shape[0] - 12) // 2 :, (a.shape[1] - 12) // 2 :][:12, :12] for a in arrs]
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        np.testing.assert_allclose(means[cls], amplitude_phase(x)[0].mean(0)[0].numpy(), rtol=1e-5)
    summary = spectra_summary(means)
    assert summary["n"] == {"real": 3, "fake": 2} and summary["high_freq_ratio_fake_over_real"] > 0


def test_class_mean_needs_both_classes(tmp_path: Path) -> None:
    _tree(tmp_path, {"real": [8], "fake": []})
    with pytest.raises(ValueError, match="both classes"):
        class_mean_spectra(tmp_path, split="test")


def test_mean_spectrum_is_the_one_class_mean() -> None:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)]
    ys = [torch.tensor([1, 1, 1]), torch.tensor([1, 1])]
    torch.testing.assert_close(mean_spectrum(xs), mean_spectra_by_class(list(zip(xs, ys)))[1])
    with pytest.raises(ValueError, match="differ in size"):
        mean_spectra_by_class([(xs[0], ys[0]), (torch.randn(1, 3, 6, 6), torch.tensor([1]))])
    with pytest.raises(ValueError, match="differ in size"):
        mean_spectrum([xs[0], torch.randn(1, 3, 6, 6)])
