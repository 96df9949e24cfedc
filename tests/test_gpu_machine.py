"""Issue 18: what travels to a GPU machine and what comes back (the carried file, its size limit, the
commit stamp, the carried faces, the torch build and per-phase seconds). The whole runbook runs in
make test (make device-rehearsal); these are its fast parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dfig import paths
from dfig.report import manifest

ROOT = paths.root()


def _faces(root: Path) -> Path:
    for split in ("train", "val", "test"):
        for cls in ("real", "fake"):
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "0.jpg").write_bytes(b"jpeg")
    return root


def test_the_manifest_takes_the_commit_from_the_stamp_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "root", lambda: tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert manifest.git_info()["commit"] == "unknown"
    stamp = {"commit": "ab" * 20, "branch": "main", "dirty": False}
    (tmp_path / manifest.COMMIT_STAMP).write_text(json.dumps(stamp))
    assert manifest.git_info() == {**stamp, "source": "dfig-commit.json"}


def test_the_manifest_records_the_torch_build() -> None:
    import torch

    build = manifest.package_versions()["torch_build"]
    assert build.startswith(torch.__version__ + " (")
    assert ("CUDA " in build) == bool(torch.version.cuda) and build.endswith(")")


def test_the_carried_file_holds_the_tree_without_git_and_the_stamp(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "x-1.0-py3-none-any.whl").write_bytes(b"w")
    out = tmp_path / "carry.tar.gz"
    script = ROOT / "benchmarks" / "device_carry.sh"
    r = subprocess.run(
        ["bash", str(script), str(out), str(wheels), str(_faces(tmp_path / "faces"))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "MiB unpacked" in r.stdout and "limit 64 MiB" in r.stdout
    with tarfile.open(out) as t:
        names = set(t.getnames())
        stamp = json.load(t.extractfile("dfig/dfig-commit.json"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert stamp["commit"] == head.strip() and isinstance(stamp["dirty"], bool)
    assert {"dfig/run_all.py", "dfig/docs/gpu.md", "dfig/work/gpu-wheels/x-1.0-py3-none-any.whl"} <= names
    assert "dfig/work/device/faces/val/fake/0.jpg" in names
    assert not any(n.startswith("dfig/.git/") or n == "dfig/.git" for n in names)


def test_the_carried_file_is_refused_above_the_limit(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    out = tmp_path / "carry.tar.gz"
    r = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "device_carry.sh"),
            str(out),
            str(wheels),
            str(_faces(tmp_path / "f")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CARRY_LIMIT_MIB": "1"},
    )
    assert r.returncode == 2 and "REFUSED" in r.stderr and "above the 1 MiB limit" in r.stderr
    assert not out.exists() and not Path(f"{out}.part").exists()


def test_the_device_check_refuses_to_run_without_the_carried_faces(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--cpu", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FACES": str(tmp_path / "none")},
    )
    assert r.returncode == 2 and "make device-faces" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "versions.json").exists(), "stopped before anything ran"


def test_the_table_prints_the_seconds_of_each_phase(tmp_path: Path, capsys) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import device_table
    finally:
        sys.path.pop(0)
    phases = ["packages=3", "weights=20", "benchmarks=90", "profile=250"]
    device_table.main([str(tmp_path), "--wall_seconds", "364", "--phases", *phases])
    out = capsys.readouterr().out
    assert "seconds per phase: packages 3, weights 20, benchmarks 90, profile 250; total 364" in out
    saved = json.loads((tmp_path / "device_check.json").read_text())
    assert saved["phase_seconds"] == {"packages": 3.0, "weights": 20.0, "benchmarks": 90.0, "profile": 250.0}


def test_docs_gpu_marks_the_one_command_that_the_rehearsal_runs() -> None:
    doc = (ROOT / "docs" / "gpu.md").read_text()
    after = doc.split("<!-- the GPU command", 1)[1].split("```bash\n", 1)[1]
    assert after.splitlines()[0] == "bash benchmarks/device_check.sh work/device/out work/gpu-wheels"
    rehearsal = (ROOT / "benchmarks" / "device_rehearsal.sh").read_text()
    assert "<!-- the GPU command" in rehearsal and "device_check.sh --cpu " in rehearsal
    make = (ROOT / "Makefile").read_text()
    test_line = next(line for line in make.splitlines() if line.startswith("test:")).split()
    assert {"device-rehearsal", "unit-py3.12"} <= set(test_line), test_line
