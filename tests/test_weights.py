"""dfig.weights: registry facts, locate/verify errors, hash record, status table and CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfig import weights as W
from dfig.weights import checks


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_registry_facts() -> None:
    assert set(W.WEIGHTS) >= {
        "sam_vit_h",
        "sam_vit_l",
        "sam_vit_b",
        "cycleisp_sidd_rgb",
        "resnet50",
        "resnet34",
        "mobilenet_v2",
        "mobilenetv2_c5e733a8",
    }
    assert W.WEIGHTS["sam_vit_h"].size == 2564550879
    assert W.WEIGHTS["sam_vit_l"].size == 1249524607
    assert W.WEIGHTS["sam_vit_b"].size == 375042383
    assert (
        W.WEIGHTS["sam_vit_b"].url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    )
    r50 = W.WEIGHTS["resnet50"]
    assert (r50.filename, r50.size, r50.sha256_prefix) == ("resnet50-19c8e357.pth", 102502400, "19c8e357")
    assert r50.url == "https://download.pytorch.org/models/resnet50-19c8e357.pth"
    assert {"resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"} <= set(r50.filenames)
    assert W.WEIGHTS["cycleisp_sidd_rgb"].filename == "sidd_rgb.pth"
    assert W.WEIGHTS["mobilenetv2_c5e733a8"].filename == "mobilenetv2-c5e733a8.pth"
    for name, s in W.WEIGHTS.items():
        assert s.name == name and s.kind in {"sam", "cycleisp", "backbone"} and s.url.startswith("https://")
        assert s.used_by and s.notes
        # torch.hub convention: the hex part of a torchvision name is the SHA-256 prefix
        for fn in s.filenames:
            exp = s.expected(fn)
            if exp["sha256_prefix"]:
                assert re.fullmatch(r"[0-9a-f]{8}", exp["sha256_prefix"])
                assert fn.endswith(f"-{exp['sha256_prefix']}.pth")


def test_locate_missing_names_file_folder_and_url(tmp_path: Path) -> None:
    with pytest.raises(W.MissingWeightsError) as ei:
        W.locate("sam_vit_h", tmp_path)
    msg = str(ei.value)
    assert isinstance(ei.value, FileNotFoundError)
    assert "sam_vit_h_4b8939.pth" in msg and str(tmp_path) in msg
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in msg
    # an explicit file path that does not exist
    with pytest.raises(W.MissingWeightsError, match="sidd_rgb.pth"):
        W.locate("cycleisp_sidd_rgb", tmp_path / "nowhere" / "sidd_rgb.pth")


def test_default_folder_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIG_WEIGHTS", str(tmp_path))
    with pytest.raises(W.MissingWeightsError, match=re.escape(str(tmp_path))):
        W.locate("cycleisp_sidd_rgb")
    f = _write(tmp_path / "sidd_rgb.pth", b"x" * 100)
    assert W.locate("cycleisp_sidd_rgb") == f
    assert W.expected_path("resnet50") == tmp_path / "resnet50-19c8e357.pth"


def test_wrong_size_names_expected_and_actual(tmp_path: Path) -> None:
    _write(tmp_path / "sam_vit_b_01ec64.pth", b"\0" * 1000)
    with pytest.raises(W.WrongWeightsError) as ei:
        W.locate("sam_vit_b", tmp_path)
    assert "375,042,383" in str(ei.value) and "1,000" in str(ei.value)
    assert W.locate("sam_vit_b", tmp_path, verify="none").name == "sam_vit_b_01ec64.pth"
    v = W.verify("sam_vit_b", tmp_path)
    assert v["exists"] and v["size_ok"] is False and v["size"] == 1000


def test_hash_prefix_checked_for_torchvision_names(tmp_path: Path) -> None:
    # resnet34's alternate has no registered size: the hash prefix in its name decides
    _write(tmp_path / "resnet34-333f7ec4.pth", os.urandom(256))
    with pytest.raises(W.WrongWeightsError, match="333f7ec4"):
        W.locate("resnet34", tmp_path)


def test_hash_recorded_then_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(4096)
    digest = hashlib.sha256(data).hexdigest()
    toy = W.WeightSpec(
        "toy",
        f"toy-{digest[:8]}.pth",
        "https://example.org/toy.pth",
        4096,
        None,
        digest[:8],
        "backbone",
        "tests",
        "a toy entry",
    )
    monkeypatch.setitem(W.WEIGHTS, "toy", toy)
    f = _write(tmp_path / toy.filename, data)
    assert W.locate("toy", tmp_path) == f
    db = json.loads((tmp_path / W.HASHES_FILE).read_text())
    assert db[toy.filename]["sha256"] == digest and db[toy.filename]["size"] == 4096
    # unchanged file: the record is trusted, no re-hash
    monkeypatch.setattr(checks, "sha256_file", lambda p: (_ for _ in ()).throw(AssertionError("re-hashed")))
    assert W.locate("toy", tmp_path) == f
    assert W.weights_record("toy", tmp_path)["sha256"] == digest
    monkeypatch.undo()
    monkeypatch.setitem(W.WEIGHTS, "toy", dataclasses.replace(toy, sha256_prefix=None))
    # replaced by another file of the same size: caught against the record
    f.write_bytes(os.urandom(4096))
    os.utime(f, ns=(1, 1))
    with pytest.raises(W.WrongWeightsError, match="recorded"):
        W.locate("toy", tmp_path)
    v = W.verify("toy", tmp_path, full_hash=True)
    assert v["recorded_ok"] is False and v["size_ok"] is True


def test_unrecognised_name_checked_against_known_sizes(tmp_path: Path) -> None:
    f = _write(tmp_path / "resnet50.pth", b"\0" * 10)  # the original project's name, wrong content
    with pytest.raises(W.WrongWeightsError, match="102,502,400"):
        W.locate("resnet50", f)


def test_status_and_cli(tmp_path: Path) -> None:
    rows = W.status(tmp_path)
    assert [r["name"] for r in rows] == list(W.WEIGHTS)
    assert all(r["state"] == "missing" for r in rows)
    env = {**os.environ, "DFIG_WEIGHTS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "dfig.weights", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "missing" in out.stdout and "https://download.pytorch.org/models/resnet50-19c8e357.pth" in out.stdout
    )
    assert str(tmp_path) in out.stdout
    _write(tmp_path / "sam_vit_l_0b3195.pth", b"\0" * 7)
    _write(tmp_path / "sidd_rgb.pth", b"abc")
    out = subprocess.run(
        [sys.executable, "-m", "dfig.weights", "--dir", str(tmp_path), "--hash"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1  # a wrong file is an error
    assert "wrong size" in out.stdout and "1,249,524,607" in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("cycleisp_sidd_rgb"))
    assert "present" in line and hashlib.sha256(b"abc").hexdigest()[:16] in line
