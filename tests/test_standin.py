"""Stand-in weights: official formats that load strictly, never taken for official files, labelled in
every stage record, the manifest and page 1 of the PDF; the paper-standin profile = paper + a few lines;
the device check's table and projection. vit_b only (never vit_h in tests)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dfig import io, paths, standin
from dfig import weights as W
from dfig.report import manifest, paper

KINDS = ("sam_vit_b", "cycleisp_sidd_rgb", "resnet50", "resnet34", "mobilenetv2_c5e733a8", "mobilenet_v2")


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("standin")
    recs = standin.write_standins(d, KINDS, seed=0)
    assert {r["status"] for r in recs} == {"written"}
    return d


@pytest.fixture()
def policy(monkeypatch: pytest.MonkeyPatch):
    def set_policy(value: str | None, weights_dir: Path | None = None) -> None:
        if value is None:
            monkeypatch.delenv("DFIG_STANDIN", raising=False)
        else:
            monkeypatch.setenv("DFIG_STANDIN", value)
        if weights_dir is not None:
            monkeypatch.setenv("DFIG_WEIGHTS", str(weights_dir))

    return set_policy


def test_every_kind_loads_through_the_strict_loaders(standin_dir: Path, policy) -> None:
    from dfig.core.denoise import load_cycleisp
    from dfig.core.models import build_detector
    from dfig.stages.segment import load_sam

    policy("allow")
    for name in KINDS:
        assert (standin_dir / W.spec(name).filename).is_file(), "official file name"
        assert W.describe(standin_dir / W.spec(name).filename)["kind"] == "stand-in"
    sam = load_sam("vit_b", W.locate("sam_vit_b", standin_dir))  # strict: every key, every shape
    assert sum(p.numel() for p in sam.parameters()) > 80e6
    raw = torch.load(standin_dir / "sidd_rgb.pth", weights_only=True)
    assert set(raw) == {"state_dict"} and all(k.startswith("module.") for k in raw["state_dict"])
    den = load_cycleisp(standin_dir)
    assert den.source["provenance"]["kind"] == "stand-in"
    for arch, name in (
        ("res50", "resnet50"),
        ("res34", "resnet34"),
        ("mobilev2", "mobilenetv2_c5e733a8"),
        ("mobilev2", "mobilenet_v2"),
    ):
        model = build_detector(arch, 0, pretrained=standin_dir / W.spec(name).filename)
        assert model.pretrained_report["provenance"]["label"] == W.STANDIN_LABEL
    assert model.pretrained_report["layout"] == "torchvision"
    dli = torch.load(standin_dir / "mobilenetv2-c5e733a8.pth", weights_only=True)
    assert "conv.0.weight" in dli and "features.17.conv.7.running_var" in dli, "d-li14 layout"


def test_same_seed_same_weights_and_reruns_keep_files(standin_dir: Path, tmp_path: Path) -> None:
    rec = standin.write_standin("cycleisp_sidd_rgb", tmp_path, seed=0)
    side = json.loads(W.standin_marker_path(standin_dir / "sidd_rgb.pth").read_text())
    assert rec["sha256"] == side["sha256"], "a fixed seed gives the same file"
    assert standin.write_standin("cycleisp_sidd_rgb", tmp_path, seed=0)["status"] == "kept"
    assert standin.write_standin("cycleisp_sidd_rgb", tmp_path, seed=1)["sha256"] != rec["sha256"]


def test_policy_paper_refuses_standin_requires(
    standin_dir: Path, tmp_path: Path, policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy(None)
    monkeypatch.setenv("DFIG_ALLOW_FALLBACKS", "0")  # the paper profile
    with pytest.raises(W.StandinWeightsError, match="stand-in.*official files only"):
        W.locate("resnet34", standin_dir)
    policy("require")
    assert W.locate("resnet34", standin_dir).name == "resnet34-b627a593.pth"
    official_like = tmp_path / "sidd_rgb.pth"
    torch.save({"state_dict": {"module.x": torch.zeros(1)}}, official_like)  # unmarked
    with pytest.raises(W.StandinWeightsError, match="requires stand-in weights"):
        W.locate("cycleisp_sidd_rgb", tmp_path)
    policy("allow")
    assert W.verify("cycleisp_sidd_rgb", tmp_path)["standin"] is False
    assert W.describe(official_like)["kind"] == "official"
    other = tmp_path / "finetuned_sam.pth"
    shutil.copyfile(official_like, other)
    assert W.describe(other)["kind"] == "other"


def test_marker_survives_copying_the_file_alone(standin_dir: Path, tmp_path: Path, policy) -> None:
    policy(None)
    copy = tmp_path / "sidd_rgb.pth"
    shutil.copyfile(standin_dir / "sidd_rgb.pth", copy)  # no sidecar: the marker inside still says so
    d = W.describe(copy)
    assert d["kind"] == "stand-in" and d["marker"].startswith("embedded")
    assert W.status(tmp_path)[3]["state"] == W.STANDIN_LABEL
    # a sidecar that does not match the file (replaced by another file) is an error, never ignored
    W.standin_marker_path(copy).write_text(json.dumps({"size": 1, "weights": "cycleisp_sidd_rgb"}))
    with pytest.raises(W.WrongWeightsError, match="file was replaced"):
        W.locate("cycleisp_sidd_rgb", tmp_path)


def test_cli_writes_and_never_overwrites_a_foreign_file(tmp_path: Path) -> None:
    (tmp_path / "resnet34-b627a593.pth").write_bytes(b"official?")
    cmd = [sys.executable, "-m", "dfig.weights", "standin", "--out", str(tmp_path), "--only"]
    r = subprocess.run([*cmd, "resnet34"], capture_output=True, text=True)
    assert r.returncode == 2 and "never overwritten" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "resnet34-b627a593.pth").read_bytes() == b"official?"
    r = subprocess.run([*cmd, "no_such"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown stand-in 'no_such'; choose one of" in r.stderr
    r = subprocess.run([*cmd, "mobilenetv2_c5e733a8"], capture_output=True, text=True)
    assert r.returncode == 0 and W.standin_marker_path(tmp_path / "mobilenetv2-c5e733a8.pth").is_file()


def test_stage_records_manifest_and_pdf_say_standin(standin_dir: Path, policy) -> None:
    from pypdf import PdfReader

    from dfig.core.denoise import build_denoiser
    from dfig.stages.segment import build_segmenter
    from dfig.stages.trainrun import resolve_pretrained

    policy("require", standin_dir)
    prof = "paper-standin"
    _, seg = build_segmenter("sam", model_type="vit_b", checkpoint=standin_dir, allow_fallback=False)
    _, den = build_denoiser("cycleisp", checkpoint=None, allow_fallback=False)
    _, pre = resolve_pretrained("mobilev2", "imagenet")
    assert (
        seg["weights"]["provenance"]["kind"]
        == den["provenance"]["kind"]
        == pre["provenance"]["kind"]
        == "stand-in"
    )
    io.write_stage_meta(paths.work_dir(prof) / "faces", {"segmenter": seg})
    io.write_stage_meta(paths.work_dir(prof) / "lnp", {"denoiser": den, "input": {"segmenter": seg}})
    io.save_json(
        {"name": "mobilev2_mode0", "pretrained_provenance": pre["provenance"]},
        paths.metrics_dir(prof) / "train_mobilev2_mode0.json",
    )
    man = io.load_json(manifest.write_manifest({"name": prof}, [], 1.0, 0))
    listed = {s["weights"]: s["used_in"] for s in man["standins"]}
    assert set(listed) == {"sam_vit_b", "cycleisp_sidd_rgb", "mobilenetv2_c5e733a8"}
    assert listed["mobilenetv2_c5e733a8"] == ["train mobilev2_mode0"]
    assert all(r["state"] in (W.STANDIN_LABEL, "missing") for r in man["weights"])
    pdf = paper.build_paper(prof, publish=False)
    first = " ".join(PdfReader(pdf).pages[0].extract_text().split())
    assert "STAND-IN WEIGHTS" in first and "PAPER-STANDIN PROFILE" in first
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "sam_vit_b" in text and "Stand-in weights" in text


def test_paper_standin_is_paper_plus_listed_overrides(run_all) -> None:
    paper, st = run_all.load_profile("paper"), run_all.load_profile("paper-standin")
    changed = {k for k in set(paper) | set(st) if paper.get(k) != st.get(k)}
    assert changed == {
        "name",
        "description",
        "base",
        "standin_weights",
        "default_data",
        "expect_data",  # the face sample is no copy of the 140k collection: its data check only warns
        "publish_pdf",
        "common",
        "runs",
    }
    assert {k for k in paper["common"] if paper["common"][k] != st["common"][k]} == {"profile"}
    assert [(r["notebook"], r.get("grid")) for r in paper["runs"]] == [
        (r["notebook"], r.get("grid")) for r in st["runs"]
    ]
    diffs = {
        r["notebook"]: {k for k in s["params"] if r.get("params", {}).get(k) != s["params"][k]}
        for r, s in zip(paper["runs"], st["runs"])
    }
    assert diffs == {
        "01_segmentation": set(),
        "02_lnp": set(),
        "03_spectra": {"n_mean"},
        "04_train": {"epochs", "max_minutes"},
        "05_evaluate": {"robustness_max_images"},
        "06_paper": {"publish"},
    }
    assert st["allow_fallbacks"] is False and st["require_cuda"] is True
    runs = run_all.expand(st, None, {})
    run_all.check_parameters(runs)
    assert len([r for r in runs if r["notebook"] == "04_train"]) == 19
    cpu = run_all.load_profile("paper-standin-cpu")
    assert cpu["base"] == "paper-standin" and len(run_all.expand(cpu, "/x", {})) < len(runs)


def test_preflight_paper_refuses_standins_and_standin_profile_says_how(
    run_all, standin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DFIG_STANDIN", "allow")  # apply_weights_policy sets it; undone after the test
    monkeypatch.setenv("DFIG_WEIGHTS", str(standin_dir))
    prof = run_all.load_profile("paper")
    assert run_all.apply_weights_policy(prof) == "forbid"
    with pytest.raises(SystemExit, match=r"(?s)resnet50-19c8e357.pth: is a stand-in \(random weights\)"):
        run_all.preflight(prof, run_all.expand(prof, str(tmp_path), {}))
    monkeypatch.setenv("DFIG_WEIGHTS", str(tmp_path / "none"))
    prof = run_all.load_profile("paper-standin")
    assert run_all.apply_weights_policy(prof) == "require"
    with pytest.raises(SystemExit, match="python -m dfig.weights standin --out"):
        run_all.preflight(prof, run_all.expand(prof, str(tmp_path), {}))


def _table_module():
    spec = importlib.util.spec_from_file_location(
        "device_table", paths.root() / "benchmarks" / "device_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_device_table_projects_the_paper_profile(tmp_path: Path, capsys) -> None:
    t = _table_module()
    for stage, rate in (("sam", 20.0), ("lnp", 100.0), ("train", 500.0)):
        io.save_json(
            {
                "stage": stage,
                "device": "cuda",
                "gpu_name": "Test GPU",
                "torch": "2.11",
                "naive_img_s": rate / 2,
                "ours_img_s": rate,
                "speedup": 2.0,
                "settings": {},
            },
            tmp_path / f"bench_{stage}.json",
        )
    io.save_json(
        {
            "profile": "paper-standin",
            "status": "ok",
            "total_seconds": 200,
            "runs": [{"run": "a", "status": "ok"}],
            "standins": [{"weights": "sam_vit_h"}],
        },
        tmp_path / "reports" / "paper-standin" / "manifest.json",
    )
    assert t.main([str(tmp_path), "--epochs", "10"]) == 0
    res = json.loads((tmp_path / "device_check.json").read_text())
    p = res["projection"]
    assert p["sam"]["hours"] == pytest.approx(140_000 / 20 / 3600)
    assert p["lnp"]["hours"] == pytest.approx(3 * 140_000 / 100 / 3600)
    assert p["train"]["hours_per_model"] == pytest.approx(10 * (100_000 + 20_000 / 3) / 500 / 3600)
    assert p["train"]["hours"] == pytest.approx(19 * p["train"]["hours_per_model"])
    out = capsys.readouterr().out
    assert "Test GPU" in out and "3-4 h reported by the paper" in out and "sam_vit_h" in out
    (tmp_path / "bench_train.json").unlink()
    assert t.main([str(tmp_path)]) == 0, "a missing benchmark is a '-' row, not a failure"
    assert json.loads((tmp_path / "device_check.json").read_text())["projection"]["total_hours"] is None


def test_device_check_usage_and_face_subset(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(paths.root() / "benchmarks" / "device_check.sh")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "usage: benchmarks/device_check.sh [--cpu] OUTDIR [WHEELDIR]" in r.stderr
    src = tmp_path / "src"
    for split in ("train", "val", "test"):
        for cls in ("real", "fake"):
            for i in range(3):
                (src / split / cls).mkdir(parents=True, exist_ok=True)
                (src / split / cls / f"{i}.jpg").write_bytes(b"jpeg")
    script = paths.root() / "benchmarks" / "face_subset.py"
    run = [sys.executable, str(script), "--src", str(src), "--per_class", "2", "--out"]
    r = subprocess.run([*run, str(tmp_path / "sub")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "sub" / "val" / "fake").iterdir()) == ["0.jpg", "1.jpg"]
    r = subprocess.run([*run, str(src / "train" / "sub")], capture_output=True, text=True)
    assert r.returncode == 2 and "never written into" in r.stderr and not (src / "train" / "sub").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    r = subprocess.run([*run, str(tmp_path / "other")], capture_output=True, text=True)
    assert r.returncode == 2 and "never overwritten" in r.stderr
