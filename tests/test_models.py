"""dfig.core.models: shapes of every mode x backbone, attention, spectral scaling, gradients, overfitting,
official-weights loading in each layout (strict key checks), detector checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from dfig.core.models import (
    BACKBONES,
    FUSIONS,
    SPEC_NORMS,
    AttentionBlock,
    CheckpointMismatchError,
    DFIGDetector,
    PretrainedMismatchError,
    build_detector,
    load_detector,
    load_pretrained_backbone,
    mode_key,
)
from dfig.core.spectra import amplitude_phase

ARCHS = ("res50", "mobilev2", "res34")
MODES = (0, 1, 2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Two OpenMP threads on a shared 2-core machine are many times slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _x(b: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g)


# ---------------------------------------------------------------------------------------------
# shapes


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", MODES)
def test_output_shape_every_mode_and_backbone(arch: str, mode: int):
    torch.manual_seed(0)
    model = build_detector(arch, mode).eval()
    assert (model.arch, model.mode, model.spectra_channels, model.in_channels) == (arch, mode, 1, 5)
    x = _x()
    with torch.no_grad():
        fused = model.fuse(x)
        out = model(x)
    assert fused.shape == (2, 5, 64, 64)
    assert out.shape == (2,) and torch.isfinite(out).all()
    stem = model.backbone.get_submodule(BACKBONES[arch].stem)
    assert stem.in_channels == 5 and stem.bias is None
    assert model.backbone.get_submodule(BACKBONES[arch].head).out_features == 1


@pytest.mark.parametrize("mode", [0, 1, 2, "lnp", "spec"])
def test_three_channel_spectra_and_ablations(mode):
    spectra_ch = 3 if mode != "lnp" else 1
    model = build_detector("mobilev2", mode, spectra_channels=spectra_ch).eval()
    expected = {0: 9, 1: 9, 2: 9, "lnp": 3, "spec": 6}[mode]
    assert model.in_channels == expected == FUSIONS[mode](spectra_ch).out_channels
    with torch.no_grad():
        assert model.fuse(_x()).shape == (2, expected, 64, 64)
        assert model(_x()).shape == (2,)
    assert model.backbone.features[0][0].in_channels == expected


def test_fusion_layouts_are_the_documented_ones():
    lnp = _x(2, 16)
    amp, phase = amplitude_phase(lnp)
    spec = torch.cat([amp, phase], 1)
    f2 = FUSIONS[2]()
    torch.testing.assert_close(f2(lnp, spec), torch.cat([lnp, amp, phase], 1))
    f0 = FUSIONS[0]()
    out0 = f0(lnp, spec)
    torch.testing.assert_close(out0[:, :3], lnp)  # LNP passes unchanged, attention on the spectra only
    torch.testing.assert_close(out0[:, 3:], f0.att(spec))
    f1 = FUSIONS[1]()
    torch.testing.assert_close(f1(lnp, spec), f1.att(torch.cat([lnp, amp, phase], 1)))
    assert FUSIONS["lnp"]()(lnp, None) is lnp


def test_mode_and_arch_names():
    assert mode_key("1") == 1 and mode_key(" LNP ") == "lnp"
    with pytest.raises(ValueError, match="unknown fusion mode"):
        mode_key(7)
    assert DFIGDetector("resnet34", "2").arch == "res34"
    with pytest.raises(ValueError, match="unknown backbone"):
        build_detector("vgg16", 0)
    with pytest.raises(ValueError, match="spec_norm"):
        build_detector("mobilev2", 0, spec_norm="zscore")
    with pytest.raises(ValueError, match="stem_init='rgb'"):
        build_detector("mobilev2", 0, stem_init="rgb")


# ---------------------------------------------------------------------------------------------
# attention block


def test_attention_block_formula_and_residual():
    torch.manual_seed(0)
    blk = AttentionBlock(4).eval()
    assert blk.ca[1].out_channels == 4  # reduction 1
    x = torch.randn(2, 4, 8, 8)
    r = blk.body[2](torch.relu(blk.body[0](x)))
    w = torch.sigmoid(blk.ca[3](torch.relu(blk.ca[1](r.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(blk(x), r * w + x)
    for conv in (blk.body[0], blk.body[2]):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    torch.testing.assert_close(blk(x), x)  # zero body -> identity (residual)


@pytest.mark.parametrize("mode", [0, 1])
def test_gradients_reach_the_attention_block(mode: int):
    torch.manual_seed(0)
    model = build_detector("mobilev2", mode).train()
    loss = nn.functional.binary_cross_entropy_with_logits(model(_x(4)), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    loss.backward()
    att = model.fusion.att
    for p in (att.body[0].weight, att.body[2].weight, att.ca[1].weight, att.ca[3].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------
# spectral scaling


def test_spec_norm_options():
    x = _x(4, 32)
    amp, phase = amplitude_phase(x)
    raw = torch.cat([amp, phase], 1)
    none = build_detector("mobilev2", 2, spec_norm="none")
    torch.testing.assert_close(none.spectra(x), raw)
    log = build_detector("mobilev2", 2, spec_norm="log")
    torch.testing.assert_close(log.spectra(x), torch.cat([amp.log(), phase / torch.pi], 1))
    inst = build_detector("mobilev2", 2, spec_norm="instance")
    s = inst.spectra(x)
    torch.testing.assert_close(s.mean((2, 3)), torch.zeros(4, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.std((2, 3), unbiased=False), torch.ones(4, 2), atol=1e-3, rtol=0)
    bn = build_detector("mobilev2", 2, spec_norm="batchnorm").train()
    s = bn.spectra(x)
    torch.testing.assert_close(s.mean((0, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    assert not any(p.requires_grad for p in bn.spec_norm.parameters())  # non-affine
    assert set(SPEC_NORMS) >= {"none", "batchnorm", "instance", "log", "freq"}
    for name in SPEC_NORMS:
        m = build_detector("mobilev2", 0, spec_norm=name, spec_size=32).eval()
        with torch.no_grad():
            assert torch.isfinite(m(x)).all()
        assert m.config()["spec_norm"] == name


# ---------------------------------------------------------------------------------------------
# a small model overfits 32 images: gradients reach everything


def test_small_model_overfits_32_images():
    torch.manual_seed(0)
    x = _x(32, 64, seed=1)
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(2)).float()
    model = build_detector("mobilev2", 0).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        if not losses:  # after the first backward every trainable tensor has a gradient
            no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
            assert not no_grad, f"no gradient reaches {no_grad}"
        opt.step()
        losses.append(loss.item())
        if loss.item() < 0.01:
            break
    assert losses[0] > 0.3
    assert min(losses[-3:]) < 0.05, f"did not overfit: losses {losses[::10]}"


# ---------------------------------------------------------------------------------------------
# official ImageNet weights: files written here in each official layout

TV = {
    "res50": torchvision.models.resnet50,
    "res34": torchvision.models.resnet34,
    "mobilev2": torchvision.models.mobilenet_v2,
}
CHECK_KEY = {
    "res50": "layer3.1.conv2.weight",
    "res34": "layer2.0.downsample.0.weight",
    "mobilev2": "features.5.conv.1.0.weight",
}


def _dli14_names(tv_keys: list[str]) -> list[str]:
    """torchvision MobileNetV2 keys -> d-li14 mobilenetv2.pytorch (mobilenetv2-c5e733a8.pth) keys, in order."""
    out = []
    for k in tv_keys:
        parts = k.split(".")
        if parts[0] == "classifier":
            out.append(f"classifier.{parts[-1]}")
        elif parts[1] == "0":  # first conv + BN
            out.append(k)
        elif parts[1] == "18":  # final 1x1 conv 320 -> 1280 + BN
            out.append(f"conv.{parts[2]}.{parts[-1]}")
        else:
            block, sub = int(parts[1]), parts[3:]
            if block == 1:  # dw (conv.0.{0,1}), pw-linear conv.1, bn conv.2
                idx = {("0", "0"): 0, ("0", "1"): 1, ("1",): 3, ("2",): 4}[tuple(sub[:-1])]
            else:  # pw conv.0.{0,1}, dw conv.1.{0,1}, pw-linear conv.2, bn conv.3
                idx = {("0", "0"): 0, ("0", "1"): 1, ("1", "0"): 3, ("1", "1"): 4, ("2",): 6, ("3",): 7}[
                    tuple(sub[:-1])
                ]
            out.append(f"features.{block}.conv.{idx}.{sub[-1]}")
    return out


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Randomly initialised ImageNet-shaped (1000 classes) state dicts in each official layout."""
    d = tmp_path_factory.mktemp("imagenet")
    torch.manual_seed(123)
    files = {}
    for arch, ctor in TV.items():
        sd = ctor(weights=None, num_classes=1000).state_dict()
        files[arch] = d / f"{arch}.pth"
        torch.save(sd, files[arch])
    tv = torch.load(files["mobilev2"], weights_only=True)
    keys = [k for k in tv if not k.endswith("num_batches_tracked")]  # old files carry no counters
    dli = dict(zip(_dli14_names(keys), (tv[k] for k in keys)))
    assert "conv.0.weight" in dli and "classifier.weight" in dli and "features.17.conv.7.running_var" in dli
    files["c5e733a8"] = d / "mobilenetv2-c5e733a8.pth"
    torch.save(dli, files["c5e733a8"])
    return files


@pytest.mark.parametrize("arch", ARCHS)
def test_pretrained_torchvision_layout_loads_everything_but_stem_and_head(arch, weight_files):
    sd = torch.load(weight_files[arch], weights_only=True)
    model = build_detector(arch, 0, pretrained=weight_files[arch])
    bb = model.backbone.state_dict()
    torch.testing.assert_close(bb[CHECK_KEY[arch]], sd[CHECK_KEY[arch]], rtol=0, atol=0)
    spec = BACKBONES[arch]
    for k, v in sd.items():  # every non-stem, non-head tensor equals the file's
        if k not in spec.stem_keys + spec.head_keys:
            assert torch.equal(bb[k], v), k
    rep = model.pretrained_report
    assert rep["layout"] == "torchvision" and rep["loaded"] == len(sd) - 3
    assert rep["skipped"] == sorted(spec.stem_keys + spec.head_keys)
    assert model.config()["pretrained"]["file"] == str(weight_files[arch])
    assert bb[spec.stem_keys[0]].shape[1] == 5  # stem stays the fresh 5-channel conv


def test_pretrained_c5e733a8_layout_maps_by_order(weight_files):
    tv = torch.load(weight_files["mobilev2"], weights_only=True)
    dli = torch.load(weight_files["c5e733a8"], weights_only=True)
    assert "features.5.conv.3.weight" in dli  # the file really is in the d-li14 layout
    model = build_detector("mobilev2", 1, pretrained=weight_files["c5e733a8"])
    bb = model.backbone.state_dict()
    assert model.pretrained_report["layout"] == "mobilenetv2_c5e733a8"
    torch.testing.assert_close(
        bb["features.5.conv.1.0.weight"], dli["features.5.conv.3.weight"], rtol=0, atol=0
    )
    torch.testing.assert_close(bb["features.18.0.weight"], dli["conv.0.weight"], rtol=0, atol=0)
    for k, v in tv.items():
        if not k.startswith(("features.0.0.", "classifier.1.")) and not k.endswith("num_batches_tracked"):
            assert torch.equal(bb[k], v), k


def test_pretrained_by_registry_name(weight_files, tmp_path, monkeypatch):
    wdir = tmp_path / "pretrained"
    wdir.mkdir()
    (wdir / "mobilenetv2-c5e733a8.pth").write_bytes(weight_files["c5e733a8"].read_bytes())
    monkeypatch.setenv("DFIG_WEIGHTS", str(wdir))
    model = build_detector("mobilev2", 0, pretrained="imagenet")
    assert model.pretrained_report["weights"] == "mobilenetv2_c5e733a8"
    model = build_detector("mobilev2", 0, pretrained="mobilenetv2_c5e733a8")
    assert model.pretrained_report["layout"] == "mobilenetv2_c5e733a8"
    with pytest.raises(FileNotFoundError, match="resnet34"):  # dfig.weights.MissingWeightsError
        build_detector("res34", 0, pretrained="imagenet")
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        build_detector("res34", 0, pretrained=tmp_path / "nothere.pth")
    with pytest.raises(ValueError, match="neither a file nor"):
        build_detector("res34", 0, pretrained="sam_vit_b")


def test_pretrained_wrapped_and_module_prefixed(weight_files, tmp_path):
    sd = torch.load(weight_files["res34"], weights_only=True)
    f = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, f)
    bb = BACKBONES["res34"](5)
    rep = load_pretrained_backbone(bb, "res34", f)
    assert rep["loaded"] == len(sd) - 3
    assert torch.equal(bb.state_dict()["layer4.1.bn2.weight"], sd["layer4.1.bn2.weight"])


def test_stem_init_rgb(weight_files):
    sd = torch.load(weight_files["res34"], weights_only=True)
    rgb = sd["conv1.weight"]
    model = build_detector("res34", 0, pretrained=weight_files["res34"], stem_init="rgb")
    w = model.backbone.conv1.weight.detach()
    torch.testing.assert_close(w[:, :3], rgb)
    torch.testing.assert_close(w[:, 3], rgb.mean(1))
    torch.testing.assert_close(w[:, 4], rgb.mean(1))
    plain = build_detector("res34", "lnp", pretrained=weight_files["res34"], stem_init="rgb")
    torch.testing.assert_close(plain.backbone.conv1.weight.detach(), rgb)  # = the pretrained RGB model
    spec_only = build_detector("res34", "spec", pretrained=weight_files["res34"], stem_init="rgb")
    torch.testing.assert_close(spec_only.backbone.conv1.weight.detach()[:, 0], rgb.mean(1))


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_pretrained_key_problems_are_loud(change, weight_files, tmp_path):
    sd = dict(torch.load(weight_files["res34"], weights_only=True))
    if change == "extra":
        sd["layer5.0.conv1.weight"] = torch.zeros(3)
        key = "layer5.0.conv1.weight"
    elif change == "missing":
        del sd["layer4.1.bn2.running_var"]
        key = "layer4.1.bn2.running_var"
    else:
        sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
        key = "layer1.0.conv1.weight"
    f = tmp_path / f"bad_{change}.pth"
    torch.save(sd, f)
    with pytest.raises(PretrainedMismatchError) as e:
        load_pretrained_backbone(BACKBONES["res34"](5), "res34", f)
    assert str(f) in str(e.value) and key in str(e.value)


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_c5e733a8_layout_problems_are_loud(change, weight_files, tmp_path):
    sd = dict(torch.load(weight_files["c5e733a8"], weights_only=True))
    if change == "extra":
        sd["features.18.conv.0.weight"] = torch.zeros(3)
    elif change == "missing":
        del sd["features.10.conv.4.running_mean"]
    else:
        sd["features.3.conv.0.weight"] = torch.zeros(144, 24, 3, 3)
    f = tmp_path / f"bad_{change}.pth"
    torch.save(sd, f)
    with pytest.raises(PretrainedMismatchError, match="bad_"):
        load_pretrained_backbone(BACKBONES["mobilev2"](5), "mobilev2", f)


def test_wrong_backbone_weights_are_refused(weight_files):
    with pytest.raises(PretrainedMismatchError, match="res50"):
        build_detector("res50", 0, pretrained=weight_files["res34"])
    with pytest.raises(PretrainedMismatchError):
        build_detector("mobilev2", 0, pretrained=weight_files["res34"])


# ---------------------------------------------------------------------------------------------
# detector checkpoints


def _save_ckpt(model: DFIGDetector, path: Path, **extra) -> Path:
    torch.save(
        {
            "model": model.state_dict(),
            "config": model.config(),
            "step": 7,
            "optimizer": torch.optim.Adam(model.parameters()).state_dict(),
            "options": {"lr": 1e-4, "arch": model.arch},
            **extra,
        },
        path,
    )
    return path


def test_load_detector_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = build_detector("mobilev2", 1, spec_norm="batchnorm").eval()
    f = _save_ckpt(model, tmp_path / "model_epoch_best.pth")
    loaded, ckpt = load_detector(f, expect_arch="mobilev2", expect_mode="1")
    assert ckpt["step"] == 7 and ckpt["options"]["lr"] == 1e-4
    assert (loaded.arch, loaded.mode, loaded.config()["spec_norm"]) == ("mobilev2", 1, "batchnorm")
    assert not loaded.training
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_load_detector_refuses_other_backbone_or_mode(tmp_path):
    f = _save_ckpt(build_detector("mobilev2", 0), tmp_path / "mobile.pth")
    with pytest.raises(CheckpointMismatchError, match="holds a mobilev2 detector"):
        load_detector(f, expect_arch="res50")
    with pytest.raises(CheckpointMismatchError, match="mode 0"):
        load_detector(f, expect_mode=2)


def test_load_detector_refuses_pickled_objects_unless_trusted(tmp_path):
    model = build_detector("mobilev2", "lnp")
    f = _save_ckpt(model, tmp_path / "objects.pth", options={"dataroot": tmp_path})  # a Path object
    with pytest.raises(CheckpointMismatchError, match="trusted=True"):
        load_detector(f)
    loaded, ckpt = load_detector(f, trusted=True)
    assert loaded.mode == "lnp" and ckpt["options"]["dataroot"] == tmp_path


def test_load_detector_weights_that_do_not_fit(tmp_path):
    res34 = build_detector("res34", 0)
    cfg = build_detector("mobilev2", 0).config()  # a config that lies about the weights
    f = tmp_path / "lying.pth"
    torch.save({"model": res34.state_dict(), "config": cfg}, f)
    with pytest.raises(CheckpointMismatchError, match="backbone=res34") as e:
        load_detector(f)
    assert "lying.pth" in str(e.value) and "missing" in str(e.value)


def test_load_detector_bare_state_dict(tmp_path):
    model = build_detector("mobilev2", 2).eval()
    f = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, f)
    with pytest.raises(CheckpointMismatchError, match="backbone=mobilev2"):
        load_detector(f)
    loaded, _ = load_detector(f, expect_arch="mobilev2", expect_mode=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_x()), model(_x()))
    with pytest.raises(CheckpointMismatchError, match="do not fit"):
        load_detector(f, expect_arch="mobilev2", expect_mode=0)


def test_per_frequency_standardisation_and_frequency_coordinates(tmp_path):
    x = _x(16, 32)
    m = build_detector("mobilev2", 0, spec_norm="freq", spec_size=32, spec_coords=True)
    assert not m.spec_norm.fitted and m.in_channels == 7
    assert m.spec_norm.fit([torch.cat(amplitude_phase(x[:8]), 1), torch.cat(amplitude_phase(x[8:]), 1)]) == 16
    s = m.spectra(x)  # standardised on the very spectra it was fitted on: mean 0, std 1 per frequency
    torch.testing.assert_close(s.mean(0), torch.zeros(2, 32, 32), atol=1e-4, rtol=0)
    assert abs(float(s.std(0).mean()) - 1.0) < 0.01
    fused = m.fuse(x)
    assert fused.shape == (16, 7, 32, 32)
    torch.testing.assert_close(fused[0, 5, :, 16], (torch.arange(32.0) - 16) / 16)  # vertical frequency
    torch.testing.assert_close(fused[3, 6, 16, :], (torch.arange(32.0) - 16) / 16)  # horizontal frequency
    torch.save({"model": m.state_dict(), "config": m.config()}, tmp_path / "f.pth")
    back, _ = load_detector(tmp_path / "f.pth")
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))
    with pytest.raises(ValueError, match="32x32"):
        m(_x(2, 48))
    with pytest.raises(ValueError, match="spectral size"):
        build_detector("mobilev2", 0, spec_norm="freq")
    with pytest.raises(ValueError, match="spec_coords"):
        build_detector("mobilev2", "lnp", spec_coords=True)
