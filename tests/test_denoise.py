"""dfig.core.denoise: strict loading of an official-format CycleISP file, residual, classical fallback."""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from dfig import weights as W
from dfig.core import denoise as D
from dfig.fallback import FallbackNotAllowed, FallbackWarning


def official_key_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of CycleISP's sidd_rgb.pth, written out from DESIGN.md section 4 (not the model)."""
    c, r = 64, 4
    ks: list[tuple[str, tuple[int, ...]]] = [("head.0.weight", (c, 3, 3, 3)), ("head.0.bias", (c,))]
    for g in range(4):
        for b in range(8):
            p = f"body.{g}.body.{b}."
            ks += [
                (p + "body.0.weight", (c, c, 3, 3)),
                (p + "body.0.bias", (c,)),
                (p + "body.1.weight", (c,)),
                (p + "body.2.weight", (c, c, 3, 3)),
                (p + "body.2.bias", (c,)),
                (p + "SA.spatial.conv.weight", (1, 2, 3, 3)),
                (p + "CA.conv_du.0.weight", (r, c, 1, 1)),
                (p + "CA.conv_du.0.bias", (r,)),
                (p + "CA.conv_du.2.weight", (c, r, 1, 1)),
                (p + "CA.conv_du.2.bias", (c,)),
                (p + "conv1x1.weight", (c, 2 * c, 1, 1)),
                (p + "conv1x1.bias", (c,)),
            ]
        ks += [(f"body.{g}.body.8.weight", (c, c, 3, 3)), (f"body.{g}.body.8.bias", (c,))]
    ks += [
        ("body.4.weight", (c, c, 3, 3)),
        ("body.4.bias", (c,)),
        ("body.5.weight", (c,)),
        ("tail.0.weight", (3, c, 3, 3)),
        ("tail.0.bias", (3,)),
    ]
    return ks


def official_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Random tensors in the official layout; one PReLU tensor shared by every block and body.5."""
    g = torch.Generator().manual_seed(seed)
    prelu = torch.full((64,), 0.25) + 0.01 * torch.randn(64, generator=g)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, shp in official_key_shapes():
        if k.endswith("body.1.weight") or k == "body.5.weight":
            sd[k] = prelu
        else:
            fan_in = int(np.prod(shp[1:])) if len(shp) > 1 else 64
            sd[k] = torch.randn(shp, generator=g) * (0.5 / fan_in**0.5)
    return sd


def write_official(path: Path, seed: int = 0, module_prefix: bool = False, extra: dict | None = None) -> Path:
    sd = official_state_dict(seed)
    if module_prefix:
        sd = OrderedDict(("module." + k, v) for k, v in sd.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 100, "state_dict": sd, **(extra or {})}, path)
    return path


def test_model_matches_official_layout() -> None:
    m = D.CycleISPDenoiser()
    want = dict(official_key_shapes())
    got = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert len(want) == 399 and got == want
    n_unique = sum(p.numel() for p in m.parameters()) - 32 * 64  # the original shares one PReLU (33 here)
    assert n_unique == 2_834_947
    assert D.cycleisp_flops(1, 1) == pytest.approx(5.62e6, rel=0.01)


@pytest.mark.parametrize("module_prefix", [False, True])
def test_strict_load_official_format(tmp_path: Path, module_prefix: bool) -> None:
    f = write_official(tmp_path / "w" / "sidd_rgb.pth", seed=1, module_prefix=module_prefix)
    assert W.locate("cycleisp_sidd_rgb", f.parent) == f
    m = D.load_cycleisp(f.parent)
    sd = official_state_dict(1)
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert not m.training
    assert m.source["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert m.source["file"] == "sidd_rgb.pth"


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    sd = official_state_dict()
    del sd["body.2.body.3.conv1x1.bias"]
    sd["body.6.weight"] = torch.zeros(3)
    sd["tail.0.weight"] = torch.zeros(3, 64, 1, 1)
    f = tmp_path / "sidd_rgb.pth"
    torch.save({"state_dict": sd}, f)
    with pytest.raises(D.CheckpointMismatchError) as ei:
        D.load_cycleisp(f)
    msg = str(ei.value)
    assert str(f) in msg
    assert "missing keys (1): body.2.body.3.conv1x1.bias" in msg
    assert "unexpected keys (1): body.6.weight" in msg
    assert "tail.0.weight: file (3, 64, 1, 1) vs model (3, 64, 3, 3)" in msg
    assert isinstance(ei.value, W.WrongWeightsError)


def test_garbage_file_named(tmp_path: Path) -> None:
    f = tmp_path / "sidd_rgb.pth"
    f.write_bytes(b"<html>Google Drive virus scan warning</html>")
    with pytest.raises(W.WrongWeightsError, match="sidd_rgb.pth"):
        D.load_cycleisp(f)


def test_residual_is_x_minus_forward_any_size(tmp_path: Path) -> None:
    m = D.load_cycleisp(write_official(tmp_path / "sidd_rgb.pth", seed=2))
    x = torch.rand(1, 3, 23, 37, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y, r = m(x), m.residual(x)
    assert y.shape == r.shape == x.shape
    assert r.abs().max() > 0
    torch.testing.assert_close(r, x - y, atol=1e-5, rtol=0)


def test_fused_blocks_match_reference() -> None:
    torch.manual_seed(3)
    blk = D.DualAttentionBlock().eval()
    x = torch.randn(2, 64, 11, 17)  # two images: per-image channel weights in the batched GEMM
    with torch.inference_mode():
        ref = blk(x)
        got = blk.forward_fused(x)
        got_cl = blk.forward_fused(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(got_cl, ref, atol=2e-5, rtol=1e-5)
    assert got_cl.is_contiguous(memory_format=torch.channels_last)
    m = D.CycleISPDenoiser().eval()
    m.body = m.body[:1]  # one residual group keeps the test fast
    xi = torch.rand(2, 3, 13, 19)
    with torch.inference_mode():
        r0 = m.residual(xi)
        r1 = m.set_fused(True).residual(xi)
    assert all(b.fused for b in m.modules() if isinstance(b, D.DualAttentionBlock))
    torch.testing.assert_close(r1, r0, atol=1e-5, rtol=1e-4)


def test_classical_residual() -> None:
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(60, 200, 53), (37, 1))[..., None].repeat(3, 2)
    noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).round().astype(np.uint8)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
    den = D.ClassicalDenoiser()
    r = den.residual(x)
    assert r.shape == x.shape and r.dtype == torch.float32
    # the denoised image is closer to the clean one than the noisy input, the residual holds the noise
    err_in = np.abs(noisy - clean).mean()
    err_out = np.abs((x - r)[0].permute(1, 2, 0).numpy() * 255 - clean).mean()
    assert err_out < 0.7 * err_in
    torch.testing.assert_close(den(x), x - r)
    assert D.ClassicalDenoiser("bilateral").residual(x).abs().mean() > 0


def test_build_denoiser_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIG_WEIGHTS", str(tmp_path / "empty"))
    assert set(D.DENOISERS) == {"cycleisp", "classical"}
    with pytest.warns(FallbackWarning):
        den, rec = D.build_denoiser("cycleisp")
    assert isinstance(den, D.ClassicalDenoiser)
    assert rec["method"] == "classical" and rec["fallback"]["instead_of"].startswith("CycleISP")
    with pytest.raises(FallbackNotAllowed):
        D.build_denoiser("cycleisp", allow_fallback=False)
    monkeypatch.setenv("DFIG_ALLOW_FALLBACKS", "0")
    with pytest.raises(FallbackNotAllowed, match="python -m dfig.weights"):
        D.build_denoiser("cycleisp")
    f = write_official(tmp_path / "w" / "sidd_rgb.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FallbackWarning)
        den, rec = D.build_denoiser("cycleisp", checkpoint=f)
    assert isinstance(den, D.CycleISPDenoiser)
    assert rec["method"] == "cycleisp" and rec["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    den, rec = D.build_denoiser("classical")
    assert rec == {"method": "classical", "classical": den.params()}
    with pytest.raises(KeyError, match="cycleisp, classical"):
        D.build_denoiser("bm3d")


def test_classical_strength_is_a_named_parameter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``classical_h`` reaches the classical denoiser (and cycleisp's fallback) and its record."""
    den, rec = D.build_denoiser("classical")
    assert den.h == D.CLASSICAL_H and rec["classical"]["h"] == D.CLASSICAL_H  # the one default
    den, rec = D.build_denoiser("classical", classical_h=20)
    assert den.h == 20.0 and rec["classical"]["h"] == 20.0
    assert D.ClassicalDenoiser(**rec["classical"]).params() == den.params()  # the record rebuilds it
    monkeypatch.setenv("DFIG_WEIGHTS", str(tmp_path / "empty"))
    with pytest.warns(FallbackWarning):
        fb, fb_rec = D.build_denoiser("cycleisp", classical_h=20)
    assert fb.h == 20.0 and fb_rec["classical"]["h"] == 20.0 and fb_rec["fallback"]
    # a stronger denoiser removes more: the residual of a noisy image grows with h
    rng = np.random.default_rng(0)
    noisy = np.clip(128 + rng.normal(0, 12, (32, 32, 3)), 0, 255).round().astype(np.uint8)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
    weak = D.ClassicalDenoiser(h=3).residual(x).abs().mean()
    assert den.residual(x).abs().mean() > 1.5 * weak
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="strength h must be > 0"):
            D.build_denoiser("classical", classical_h=bad)
