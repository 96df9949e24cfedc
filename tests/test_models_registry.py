"""dfig.core.models registries: one source of truth for the lists, one error type for unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dfig import standin
from dfig import weights as W
from dfig.core import models as M
from dfig.registry import UnknownNameError


def test_lists_derive_from_the_registries() -> None:
    assert M.ARCHS == tuple(M.BACKBONES) == ("res50", "mobilev2", "res34")
    assert M.TRAIN_MODES == tuple(M.FUSIONS) == (0, 1, 2, "lnp", "spec")
    assert M.BACKBONE_NAMES == {a: s.display for a, s in M.BACKBONES.items()}
    assert M.IMAGENET_WEIGHTS == {a: s.weights for a, s in M.BACKBONES.items()}
    assert M.ARCH_ALIASES["resnet50"] == "res50" and M.ARCH_ALIASES["mobilenet_v2"] == "mobilev2"


def test_other_modules_use_the_registry_lists() -> None:
    from dfig.report import evaluate
    from dfig.stages import trainrun

    assert evaluate.BACKBONE_NAMES is M.BACKBONE_NAMES
    assert trainrun.IMAGENET_WEIGHTS is M.IMAGENET_WEIGHTS


def test_imagenet_weights_are_the_backbone_entries_of_dfig_weights() -> None:
    named = {n for names in M.IMAGENET_WEIGHTS.values() for n in names}
    backbone_files = {n for n, s in W.WEIGHTS.items() if s.kind == "backbone"}
    assert named == backbone_files
    assert named <= set(standin.BUILDERS)  # every ImageNet file has a stand-in, from the same registry
    assert {names[0] for names in M.IMAGENET_WEIGHTS.values()} <= set(standin.DEFAULT_NAMES)


@pytest.mark.parametrize(
    ("call", "what", "valid"),
    [
        (lambda: M.arch_key("vgg16"), "backbone", "'res50', 'mobilev2', 'res34'"),
        (lambda: M.mode_key("7"), "fusion mode", "0, 1, 2, 'lnp', 'spec'"),
        (lambda: M.build_spec_norm("zscore", channels=2), "spec_norm", "'none', 'batchnorm'"),
        (lambda: M.build_detector("mobilev2", 0, stem_init="imagenet"), "stem_init", "'random', 'rgb'"),
        (lambda: M.build_detector("vgg16", 0), "backbone", "'res50'"),
        (lambda: M.build_backbone("vgg16", in_channels=3), "backbone", "'res50'"),
        (lambda: M.DFIGDetector("mobilev2", "fft"), "fusion mode", "'lnp'"),
        (lambda: W.spec("resnet18"), "weights", "'sam_vit_h'"),
        (lambda: W.locate("resnet18"), "weights", "'resnet50'"),
        (lambda: standin.write_standin("resnet18", "unused"), "stand-in", "'mobilenetv2_c5e733a8'"),
    ],
)
def test_unknown_names_raise_one_error_type(call, what: str, valid: str) -> None:
    with pytest.raises(UnknownNameError) as e:
        call()
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    msg = str(e.value)
    assert msg.startswith(f"unknown {what} ") and valid in msg and "\n" not in msg


def test_builders_take_keywords() -> None:
    with pytest.raises(TypeError):
        M.build_detector("mobilev2", 0, 1)  # spectra_channels is keyword-only
    with pytest.raises(TypeError):
        M.build_backbone("res34", 5)
    model = M.build_detector("mobilev2", "lnp", spectra_channels=1, spec_norm="none")
    assert model.config()["arch"] == "mobilev2" and model.in_channels == 3
    assert M.build_backbone("resnet34", in_channels=5).conv1.in_channels == 5


def test_registry_names_import_without_torch() -> None:
    code = (
        "import sys; from dfig.core.models.backbones import ARCHS, BACKBONE_NAMES; "
        "import dfig.weights, dfig.registry; "
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_package_exports_every_public_name() -> None:
    for name in M.__all__:
        assert getattr(M, name) is not None
    assert "load_detector" in dir(M)
    with pytest.raises(AttributeError):
        M.no_such_name  # noqa: B018
