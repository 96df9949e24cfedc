"""dfig.core.spectra: amplitude/phase values, shapes, channel averaging, display helpers, mean spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfig.core.spectra import (
    amplitude_phase,
    mean_spectra_by_class,
    mean_spectrum,
    phase_to_display,
    to_display,
)


def _numpy_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel reference with numpy.fft: [B,C,H,W] -> amp, phase (shifted, not averaged)."""
    f = np.fft.fft2(x.astype(np.float64), axes=(-2, -1), norm="ortho")
    amp = (np.abs(f) + 1e-8) ** 0.8
    phase = np.arctan2(f.imag, f.real)
    return np.fft.fftshift(amp, axes=(-2, -1)), np.fft.fftshift(phase, axes=(-2, -1))


def test_shapes_and_dtype():
    x = torch.randn(2, 3, 16, 12)
    amp, phase = amplitude_phase(x)
    assert amp.shape == phase.shape == (2, 1, 16, 12)
    assert amp.dtype == phase.dtype == torch.float32
    amp3, phase3 = amplitude_phase(x, channels=3)
    assert amp3.shape == phase3.shape == (2, 3, 16, 12)


def test_constant_image_peaks_at_centre():
    x = torch.full((1, 3, 8, 10), 0.7)
    amp, _ = amplitude_phase(x)
    a = amp[0, 0]
    assert torch.argmax(a).item() == 4 * 10 + 5  # (H//2, W//2) after fftshift
    # DC of an ortho FFT = sum / sqrt(HW) = 0.7 * sqrt(80); all else ~ 0 -> eps ** 0.8
    assert a[4, 5].item() == pytest.approx((0.7 * math.sqrt(80) + 1e-8) ** 0.8, rel=1e-5)
    others = torch.cat([a.flatten()[:45], a.flatten()[46:]])
    assert others.max().item() < 1e-4


def test_amplitude_and_phase_match_numpy_per_channel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    amp_ref, phase_ref = _numpy_reference(x)
    amp3, phase3 = amplitude_phase(torch.from_numpy(x), channels=3)
    np.testing.assert_allclose(amp3.numpy(), amp_ref, rtol=1e-4, atol=1e-5)
    # compare phases on the circle (atan2 at +-pi may differ by the sign of a zero imaginary part)
    np.testing.assert_allclose(np.cos(phase3.numpy()), np.cos(phase_ref), atol=1e-4)
    np.testing.assert_allclose(np.sin(phase3.numpy()), np.sin(phase_ref), atol=1e-4)


def test_channels_1_is_mean_of_per_channel_spectra():
    x = torch.randn(2, 3, 8, 8)
    amp1, phase1 = amplitude_phase(x, channels=1)
    amp3, phase3 = amplitude_phase(x, channels=3)
    torch.testing.assert_close(amp1, amp3.mean(1, keepdim=True))
    torch.testing.assert_close(phase1, phase3.mean(1, keepdim=True))
    # a grey image (all channels equal) gives the single-channel spectrum itself
    g = torch.randn(1, 1, 8, 8).expand(1, 3, 8, 8)
    amp_g, _ = amplitude_phase(g)
    amp_one, _ = amplitude_phase(torch.cat([g[:, :1]] * 3, 1), channels=3)
    torch.testing.assert_close(amp_g[:, 0], amp_one[:, 0])


def test_phase_range_and_amplitude_positive():
    amp, phase = amplitude_phase(torch.randn(4, 3, 16, 16) * 10, channels=3)
    assert phase.min().item() >= -math.pi - 1e-6 and phase.max().item() <= math.pi + 1e-6
    assert phase.min().item() < -2.5 and phase.max().item() > 2.5  # the range is actually used
    assert (amp > 0).all()


def test_differentiable_and_float32_under_autocast():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    amp, phase = amplitude_phase(x)
    (amp.sum() + phase.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        a, p = amplitude_phase(x.detach().bfloat16())
    assert a.dtype == p.dtype == torch.float32


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="B, C, H, W"):
        amplitude_phase(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="channels must be"):
        amplitude_phase(torch.randn(1, 3, 8, 8), channels=2)


def test_display_helpers():
    amp, phase = amplitude_phase(torch.randn(1, 3, 16, 16))
    d = to_display(amp[0])
    assert d.shape == (16, 16) and d.dtype == np.float32
    assert d.min() == 0.0 and d.max() == 1.0
    amp3, _ = amplitude_phase(torch.randn(1, 3, 16, 16), channels=3)
    assert to_display(amp3).shape == (16, 16, 3)
    ph = phase_to_display(phase[0])
    assert ph.shape == (16, 16) and 0.0 <= ph.min() and ph.max() <= 1.0
    np.testing.assert_allclose(phase_to_display(np.array([[-np.pi, 0.0, np.pi]])), [[0.0, 0.5, 1.0]])


def test_mean_spectrum_and_by_class():
    torch.manual_seed(0)
    xs = [torch.randn(3, 3, 8, 8), torch.randn(2, 3, 8, 8)]
    ys = [torch.tensor([0, 1, 1]), torch.tensor([0, 0])]
    m = mean_spectrum(xs)
    expected = amplitude_phase(torch.cat(xs))[0].mean(0)
    torch.testing.assert_close(m, expected)
    # DataLoader-like tuples (images, labels, index)
    batches = [(x, y, torch.arange(len(y))) for x, y in zip(xs, ys)]
    torch.testing.assert_close(mean_spectrum(batches), expected)
    by = mean_spectra_by_class(batches)
    allx, ally = torch.cat(xs), torch.cat(ys)
    assert sorted(by) == [0, 1]
    for lab in (0, 1):
        torch.testing.assert_close(by[lab], amplitude_phase(allx[ally == lab])[0].mean(0))
    with pytest.raises(ValueError, match="no images"):
        mean_spectrum([])
