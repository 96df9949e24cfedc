"""dfig.weights.load_checkpoint / read_checkpoint / check_state_dict: the one checkpoint reader and error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from dfig import weights as W


def _sd() -> dict[str, torch.Tensor]:
    return nn.Linear(3, 2).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd, "epoch": 3},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"model": {"state_dict": sd}},
    ],
)
def test_load_checkpoint_unwraps(tmp_path: Path, wrap) -> None:
    f = tmp_path / "w.pth"
    torch.save(wrap(_sd()), f)
    got = W.load_checkpoint(f)
    assert sorted(got) == ["bias", "weight"]


def test_load_checkpoint_key(tmp_path: Path) -> None:
    f = tmp_path / "ema.pth"
    torch.save({"model": _sd(), "ema": {"weight": torch.ones(2, 3), "bias": torch.ones(2)}}, f)
    assert W.load_checkpoint(f, key="ema")["weight"].sum() == 6
    with pytest.raises(W.CheckpointMismatchError, match=r"ema\.pth.*'nothere'"):
        W.load_checkpoint(f, key="nothere")


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint\n" * 20)
    with pytest.raises(W.CheckpointReadError, match=re.escape(str(garbage))) as e:
        W.load_checkpoint(garbage)
    assert isinstance(e.value, W.CheckpointMismatchError) and isinstance(e.value, W.WrongWeightsError)
    objects = tmp_path / "objects.pth"
    torch.save({"model": _sd(), "where": tmp_path}, objects)  # a Path object: not weights_only
    with pytest.raises(W.CheckpointReadError, match="trusted=True"):
        W.read_checkpoint(objects)
    assert W.read_checkpoint(objects, trusted=True)["where"] == tmp_path
    with pytest.raises(FileNotFoundError, match="none.pth"):
        W.load_checkpoint(tmp_path / "none.pth")
    no_tensors = tmp_path / "config.pth"
    torch.save({"lr": 0.1}, no_tensors)
    with pytest.raises(W.CheckpointMismatchError, match="config.pth: not a state dict"):
        W.load_checkpoint(no_tensors)


def test_check_state_dict_lists_every_difference(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    sd = model.state_dict()
    sd.pop("1.bias")
    sd["0.weight"] = torch.zeros(4, 3)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(W.CheckpointMismatchError) as e:
        W.check_state_dict(model, sd, source=tmp_path / "bad.pth", hint="Is this the right file?")
    msg = str(e.value)
    assert (
        "bad.pth" in msg and "missing keys (1): 1.bias" in msg and "unexpected keys (1): extra.weight" in msg
    )
    assert "0.weight: file (4, 3) vs model (2, 3)" in msg and msg.endswith("Is this the right file?")
    W.check_state_dict(model, model.state_dict())  # fits: no error


def test_one_checkpoint_error_everywhere() -> None:
    from dfig.core import denoise
    from dfig.core import models as M

    assert M.CheckpointMismatchError is W.CheckpointMismatchError is denoise.CheckpointMismatchError
    assert issubclass(M.PretrainedMismatchError, W.CheckpointMismatchError)
    assert issubclass(M.PretrainedMismatchError, RuntimeError)  # as before


def test_corrupt_imagenet_file_is_a_pretrained_mismatch(tmp_path: Path) -> None:
    from dfig.core import models as M

    f = tmp_path / "resnet34-b627a593.pth"
    f.write_bytes(b"\x00" * 64)
    with pytest.raises(M.PretrainedMismatchError, match="resnet34-b627a593.pth"):
        M.load_pretrained_backbone(M.build_backbone("res34", in_channels=5), "res34", f)


def test_torch_load_only_in_the_reader() -> None:
    lib = Path(__file__).resolve().parents[1] / "lib" / "dfig"
    calls = [
        str(p.relative_to(lib)) for p in lib.rglob("*.py") if "torch.load(" in p.read_text(encoding="utf-8")
    ]
    assert calls == ["weights/checkpoint.py"]


def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "dfig.weights", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "sam_vit_h" in r.stdout and "missing" in r.stdout and r.stderr == ""
