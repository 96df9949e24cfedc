"""Issue 22, reliability round 3: long names, extreme images, interrupted and concurrent runs, unchecked
values, strict records, named files, faceless and empty inputs, full disks and read-only folders.

Each section is one kind of the issue (numbered as there); docs/reliability.md lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dfig import io
from dfig.stages import lnp as L
from dfig.stages import segment as S

pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")


class _Zero:
    """A stand-in denoiser: zero residual (fast)."""

    source = {"method": "zero"}

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _img(path: Path, seed: int = 0, size: tuple[int, int] = (16, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def _failed(meta: dict) -> dict[str, str]:
    return {Path(f["path"]).name: f["reason"] for f in meta["counts"]["failed_files"]}


# ---------------------------------------------------------------------------------------------
# 1. long file names: processed (the temporary name is cut to fit), or a counted, named skip


LONG = "é" * 60 + "x" * 116 + ".png"  # 240 bytes: fits, but not with atomic_path's 19 extra bytes


def test_long_names_go_through_segment_and_lnp(tmp_path: Path) -> None:
    assert len(LONG.encode()) == 240
    raw = tmp_path / "raw"
    _img(raw / "test" / "real" / LONG)
    _img(raw / "test" / "real" / "short.png", seed=1)
    faces, lnp = tmp_path / "faces", tmp_path / "lnp"
    rep = S.segment_tree(raw, faces, S.WholeImageSegmenter(), progress=False)
    assert not rep.failed and (faces / "test" / "real" / LONG).is_file()
    rep = L.extract_tree(faces, lnp, _Zero(), save_mode="clean", progress=False)
    assert not rep.failed and (lnp / "test" / "real" / (LONG[:-4] + ".npy")).is_file()
    assert not [p for p in tmp_path.rglob("*.part")]
    # an orphan temporary file of a long name (kill -9) is recognised and removed on rerun
    orphan = (
        faces / "test" / "real" / f".{io.temp_key(faces / 'test' / 'real' / LONG).name}.abcdefgh.png.part"
    )
    orphan.write_bytes(b"half")
    assert io.temp_target(orphan) == io.temp_key(faces / "test" / "real" / LONG)
    S.segment_tree(raw, faces, S.WholeImageSegmenter(), progress=False)
    assert not orphan.exists()


def test_an_output_name_beyond_the_limit_is_a_named_skip(tmp_path: Path, monkeypatch) -> None:
    """An output folder on a file system with shorter names (eCryptfs: 143 bytes): counted, named, no crash."""
    import dfig.tree

    monkeypatch.setattr(dfig.tree, "name_max", lambda folder: 143, raising=False)
    raw = tmp_path / "raw"
    _img(raw / "test" / "real" / LONG)
    _img(raw / "test" / "real" / "short.png", seed=1)
    rep = L.extract_tree(raw, tmp_path / "lnp", _Zero(), progress=False)
    [(path, reason)] = rep.failed
    assert path.endswith(LONG) and "longer than the file system allows (143 bytes)" in reason
    assert _failed(io.read_stage_meta(tmp_path / "lnp"))[LONG] == reason
    assert (tmp_path / "lnp" / "test" / "real" / "short.png").is_file()


# ---------------------------------------------------------------------------------------------
# 2. extreme images: a pixel and aspect-ratio budget from the header, before decoding, in every stage


@pytest.fixture(scope="module")
def extreme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 1x100000 strip and a real 12000x12000 JPEG (144 Mpx; grey, so writing it stays cheap)."""
    d = tmp_path_factory.mktemp("extreme")
    Image.new("RGB", (100000, 1), (90, 120, 150)).save(d / "strip.png")
    Image.new("L", (12000, 12000), 128).save(d / "huge.jpg", quality=50)
    return {"strip": d / "strip.png", "huge": d / "huge.jpg"}


def _with_extremes(root: Path, extreme: dict[str, Path], split: str = "test", cls: str = "fake") -> Path:
    import shutil

    d = root / split / cls
    d.mkdir(parents=True, exist_ok=True)
    for p in extreme.values():
        shutil.copy(p, d / p.name)
    return root


def _budget_reasons(failed) -> dict[str, str]:
    reasons = {Path(p).name: r for p, r in failed}
    assert "above the budget of 50.0 Mpx" in reasons["huge.jpg"], reasons
    assert "aspect ratio of 100000:1" in reasons["strip.png"], reasons
    return reasons


def test_extreme_images_are_counted_skips_in_segment_and_lnp(tmp_path: Path, extreme) -> None:
    import tracemalloc

    raw = tmp_path / "raw"
    _img(raw / "test" / "fake" / "ok.png")
    _with_extremes(raw, extreme)
    tracemalloc.start()
    rep = S.segment_tree(raw, tmp_path / "faces", S.WholeImageSegmenter(), progress=False)
    _budget_reasons(rep.failed)
    rep = L.extract_tree(raw, tmp_path / "lnp", _Zero(), progress=False)
    _budget_reasons(rep.failed)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6  # nothing was decoded (a decode of huge.jpg alone is 432 MB)
    assert _failed(io.read_stage_meta(tmp_path / "lnp")).keys() == {"huge.jpg", "strip.png"}
    with pytest.raises(Exception, match="above the budget"):
        L.extract_tree(raw, tmp_path / "lnp2", _Zero(), policy="strict", progress=False)


def test_extreme_images_are_dropped_by_training_and_prediction(tmp_path: Path, extreme, monkeypatch) -> None:
    from test_integrity_run import FEATURES, fake_checkpoint, make_tree

    from dfig.data.dataset import ImageDataset
    from dfig.data.images import BadImageError, load_rgb
    from dfig.data.layout import Sample
    from dfig.stages.predict import predict_folder

    samples = [Sample(p, 1, "train", "fake") for p in extreme.values()]
    ds = ImageDataset(samples, transform=None)
    assert len(ds) == 0 and _budget_reasons(ds.report.failed)
    big = np.zeros((3, 10, 200000), np.float16)  # a clean LNP strip (CxHxW as torch writes it)
    np.save(tmp_path / "strip.npy", big)
    from dfig.data.dataset import load_sample_image

    with pytest.raises(BadImageError, match="aspect ratio of 20000:1"):
        load_sample_image(tmp_path / "strip.npy")
    tree = _with_extremes(make_tree(tmp_path / "lnp", n=1, size=48, splits=("test",)), extreme)
    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    df = predict_folder(ck, tree, max_pixels=None)  # predict's own limit off: the global budget still holds
    assert len(df) == 2 and _budget_reasons(df.attrs["skipped"])
    monkeypatch.setenv("DFIG_MAX_ASPECT", "0")  # the user raises the budget: the strip is read
    assert load_rgb(extreme["strip"]).size == (100000, 1)
    monkeypatch.setenv("DFIG_MAX_ASPECT", "ten")
    with pytest.raises(ValueError, match="DFIG_MAX_ASPECT='ten' must be a number"):
        load_rgb(extreme["strip"])


# ---------------------------------------------------------------------------------------------
# 6. strict JSON records: null with the reason where a metric is undefined, never a bare NaN


def _strict_load(path: Path) -> dict:
    def refuse(name: str):
        raise AssertionError(f"{path} holds a bare {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_one_class_test_split_writes_strict_json(tmp_path: Path) -> None:
    import shutil

    from test_integrity_run import make_tree, tiny

    from dfig.stages.train import train

    tree = make_tree(tmp_path / "lnp", n=4, size=36)
    shutil.rmtree(tree / "test" / "fake")
    (tree / "test" / "fake").mkdir()
    res = train(tiny(tree, tmp_path / "ck", evaluate_test=True))
    summary = _strict_load(tmp_path / "ck" / "tiny" / "summary.json")
    undefined = summary[io.UNDEFINED_KEY]
    keys = [k for k in undefined if k.endswith("roc_auc")]
    assert keys and "no fake images" in undefined[keys[0]], undefined
    node = summary
    for part in keys[0].split("."):
        node = node[part]
    assert node is None and res is not None


def test_save_json_never_writes_nan(tmp_path: Path) -> None:
    p = io.save_json(
        {"a": float("nan"), "b": [1.0, float("inf")], "c": {"n_real": 3, "n_fake": 0, "ap": float("nan")}},
        tmp_path / "m.json",
    )
    d = _strict_load(p)
    assert d["a"] is None and d["b"] == [1.0, None] and d["c"]["ap"] is None
    assert (
        set(d[io.UNDEFINED_KEY]) == {"a", "b[1]", "c.ap"} and "no fake images" in d[io.UNDEFINED_KEY]["c.ap"]
    )


# ---------------------------------------------------------------------------------------------
# 7. a file the user names is used or is an error: never a silent fallback, never called "missing"


def _lnp_cli(tmp_path: Path, *args: str):
    import os
    import subprocess
    import sys

    raw = tmp_path / "raw"
    if not raw.is_dir():
        _img(raw / "test" / "real" / "a.png")
    env = {**os.environ, "DFIG_ALLOW_FALLBACKS": "1", "DFIG_WEIGHTS": str(tmp_path / "noweights")}
    cmd = [sys.executable, "-m", "dfig.stages.lnp", "--input_dir", str(raw), "--no_progress", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("kind", ["missing", "folder", "devzero"])
def test_lnp_named_checkpoint_is_used_or_an_error(tmp_path: Path, kind: str) -> None:
    named = tmp_path / "sidd_rgb.pth"
    if kind == "folder":
        named.mkdir()
    elif kind == "devzero":
        named.symlink_to("/dev/zero")
    r = _lnp_cli(tmp_path, "--output_dir", str(tmp_path / "lnp"), "--checkpoint", str(named))
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and str(named) in line and "Traceback" not in r.stderr
    assert {"missing": "not found", "folder": "expected", "devzero": "device"}[kind] in line
    assert not (tmp_path / "lnp").exists()
    # nothing named: the labelled fallback still applies (the weights folder is empty)
    r = _lnp_cli(tmp_path, "--output_dir", str(tmp_path / "lnp2"))
    assert r.returncode == 0 and "FALLBACK" in r.stdout + r.stderr


@pytest.mark.parametrize("kind", ["folder", "devzero"])
def test_weights_never_call_a_folder_or_device_missing(tmp_path: Path, kind: str) -> None:
    from dfig import weights

    d = tmp_path / "pretrained"
    d.mkdir()
    at = d / "sidd_rgb.pth"
    at.mkdir() if kind == "folder" else at.symlink_to("/dev/zero")
    row = next(r for r in weights.status(d) if r["name"] == "cycleisp_sidd_rgb")
    assert row["state"] == "not a file", row
    with pytest.raises(weights.WrongWeightsError, match="is a folder" if kind == "folder" else "/dev/zero"):
        weights.locate("cycleisp_sidd_rgb", d)


# ---------------------------------------------------------------------------------------------
# 8. faceless photos are flagged and counted; a folder with no readable image is an error


def test_predict_raw_flags_a_photo_without_a_face(tmp_path: Path, capsys) -> None:
    from test_predict import extract, fake_checkpoint, make_raw_tree

    from dfig.stages.predict import main, predict_folder
    from dfig.stages.predict.pipeline import InputMismatchWarning

    raw = make_raw_tree(tmp_path / "raw", n=1)
    Image.new("RGB", (48, 48), (200, 30, 30)).save(raw / "test" / "fake" / "solid.jpg", quality=95)
    ck = fake_checkpoint(tmp_path / "m.pth", io.read_stage_meta(extract(raw, tmp_path / "x", "compat")))
    with pytest.warns(InputMismatchWarning, match="1 of 3 photo"):
        df = predict_folder(ck, raw, raw=True)
    flags = dict(zip((Path(p).name for p in df["path"]), df["face_found"], strict=True))
    assert flags == {"real_0.jpg": True, "fake_0.jpg": True, "solid.jpg": False}
    [(p, why)] = df.attrs["no_face"]
    assert p.endswith("solid.jpg") and "featureless" in why
    out_csv = tmp_path / "p.csv"
    argv = ["--model_path", str(ck), "--input_dir", str(raw), "--raw", "--output_csv", str(out_csv)]
    assert main([*argv, "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert "NO FACE" in out and "solid.jpg" in out and "face_found" in out_csv.read_text().splitlines()[0]


def test_predict_on_a_folder_of_non_images_is_an_error(tmp_path: Path, capsys) -> None:
    from test_integrity_run import FEATURES, fake_checkpoint, one_line_error

    from dfig.stages.predict import main

    d = tmp_path / "docs" / "test" / "real"
    d.mkdir(parents=True)
    for name in ("a.png", "b.jpg", "c.npy"):
        (d / name).write_text("not an image\n")
    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    out_csv = tmp_path / "p.csv"
    argv = ["--model_path", str(ck), "--input_dir", str(tmp_path / "docs"), "--output_csv", str(out_csv)]
    assert main([*argv, "--no_progress"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "no images that can be read" in line and "all 3 files were skipped" in line
    assert not out_csv.exists()


# ---------------------------------------------------------------------------------------------
# 9. a full disk or a read-only folder: one line saying so, naming the path, no traceback


@pytest.fixture
def small_fs(tmp_path: Path):
    """Mount a real tmpfs: ``small_fs(size, ro=False)`` -> its folder; unmounted afterwards (root only)."""
    import subprocess

    mounted: list[Path] = []

    def make(size: str, ro: bool = False) -> Path:
        d = tmp_path / f"fs{len(mounted)}"
        d.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_disk_during_checkpoint_save_is_one_line(tmp_path: Path, small_fs, capsys) -> None:
    from test_integrity_run import make_tree, one_line_error

    from dfig.stages.train.cli import main

    tree = make_tree(tmp_path / "lnp", n=4, size=36)
    full = small_fs("2m")  # MobileNetV2's checkpoint is ~9 MB
    argv = ["--name", "t", "--dataroot", str(tree), "--arch", "mobilev2", "--train_mode", "0",
            "--batch_size", "8", "--load_size", "36", "--crop_size", "32", "--epochs", "1",
            "--checkpoints_dir", str(full), "--device", "cpu", "--bn_recalibrate", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "no space left on the device" in line and str(full / "t") in line
    assert not [p for p in full.rglob("*.part")]


def test_segment_into_a_read_only_folder_is_one_line(tmp_path: Path, small_fs) -> None:
    import os
    import subprocess
    import sys

    from test_integrity_run import one_line_error

    raw = tmp_path / "raw"
    _img(raw / "test" / "real" / "a.png")
    ro = small_fs("1m", ro=True)
    cmd = [sys.executable, "-m", "dfig.stages.segment", "--input_dir", str(raw), "--output_dir", str(ro / "faces"),
           "--segmenter", "prior", "--no_progress"]  # fmt: skip
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "DFIG_ALLOW_FALLBACKS": "1"}
    )
    assert r.returncode == 2
    err = "\n".join(
        x for x in r.stderr.splitlines() if "FallbackWarning" not in x and "use_fallback" not in x
    )
    line = one_line_error(err)
    assert "Read-only file system" in line and str(ro / "faces") in line


# ---------------------------------------------------------------------------------------------
# 3 and 4. run_all: the manifest says running / incomplete; one run_all per profile (a lock naming the pid)


def _notebook(path: Path, code: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def slow_profile(tmp_path: Path) -> dict[str, Path]:
    """Notebooks 91_fast (instant) and 92_slow (sleeps 300 s), a profile running both, and a driver
    script that runs run_all.py's ``cli`` with that notebook folder."""
    from dfig import paths

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    _notebook(nbdir / "91_fast.ipynb", "print('fast done')")
    _notebook(nbdir / "92_slow.ipynb", "import time\ntime.sleep(300)")
    prof = tmp_path / "lockp.yaml"
    prof.write_text(
        "name: lockp\ncommon: {profile: lockp}\nruns:\n  - notebook: 91_fast\n  - notebook: 92_slow\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import importlib.util, sys\nfrom pathlib import Path\n"
        f"spec = importlib.util.spec_from_file_location('run_all', {str(paths.root() / 'run_all.py')!r})\n"
        "mod = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(mod)\n"
        f"mod.NOTEBOOKS = Path({str(nbdir)!r})\nsys.exit(mod.cli(sys.argv[1:]))\n"
    )
    return {"nbdir": nbdir, "profile": prof, "driver": driver}


def _start(slow_profile: dict[str, Path]):
    import subprocess
    import sys

    from dfig import paths

    cmd = [sys.executable, str(slow_profile["driver"]), "--profile", str(slow_profile["profile"])]
    return subprocess.Popen(
        cmd,
        cwd=paths.root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_slow_run(proc, manifest: Path) -> dict:
    import time

    for _ in range(600):
        if manifest.is_file():
            man = json.loads(manifest.read_text())
            if [e["run"] for e in man["runs"]] == ["91_fast"]:
                return man
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the first run never finished")


def _stop_group(proc) -> None:
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the run_all we started and its kernels
    except ProcessLookupError:
        pass
    proc.wait()


def test_interrupted_run_all_says_running_then_incomplete(slow_profile, run_all) -> None:
    import signal

    from dfig import paths
    from dfig.report import runstate

    manifest = paths.reports_dir("lockp") / "manifest.json"
    proc = _start(slow_profile)
    try:
        man = _wait_for_slow_run(proc, manifest)
        assert man["status"] == "running" and man["pid"] == proc.pid and man["finished"] is None
        assert runstate.read_status("lockp") == "running"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "incomplete" in err and "Traceback" not in err, err
    finally:
        _stop_group(proc)
    man = json.loads(manifest.read_text())
    assert man["status"] == "incomplete" and man["finished"] is None
    inc = man["incomplete"]
    assert inc["finished_runs"] == ["91_fast"] and inc["unfinished_runs"] == ["92_slow"]
    assert "SIGTERM" in inc["reason"]


def test_second_run_all_is_refused_and_a_dead_holder_is_taken_over(
    slow_profile, run_all, monkeypatch
) -> None:
    from dfig import paths
    from dfig.report import runstate

    manifest = paths.reports_dir("lockp") / "manifest.json"
    proc = _start(slow_profile)
    try:
        _wait_for_slow_run(proc, manifest)
        monkeypatch.setattr(run_all, "NOTEBOOKS", slow_profile["nbdir"])
        argv = ["--profile", str(slow_profile["profile"]), "--only", "91_fast", "--set", "profile=lockp"]
        with pytest.raises(SystemExit, match=rf"already being run by run_all \(pid {proc.pid} "):
            run_all.main(argv)
        _stop_group(proc)  # kill -9: no handler runs, the manifest still says running
        assert json.loads(manifest.read_text())["status"] == "running"
        assert runstate.read_status("lockp") == "incomplete"  # its process is gone
        assert run_all.main(argv) == 0  # the stale lock is taken over
    finally:
        _stop_group(proc)
    man = json.loads(manifest.read_text())
    assert man["status"] == "ok" and [e["run"] for e in man["runs"]] == ["91_fast"]
    earlier = man["partial_runs"]
    assert earlier and runstate.read_lock(open(runstate.lock_file("lockp"))) == {}


# ---------------------------------------------------------------------------------------------
# 5. every value and profile key checked before anything runs; profile errors name file, line and key


@pytest.mark.parametrize(
    "setting,needle",
    [
        ("epochs=-1", "epochs and train_repeats must be >= 1"),
        ("crop_size=0", "crop_size must be >= 1, got 0"),
        ("crop_size=-5", "crop_size must be >= 1, got -5"),
        ("lr=-1", "lr must be > 0, got -1"),
        ("batch_size=0", "batch_size"),
        ("n_boot=0", "n_boot=0 (05_evaluate): must be >= 1"),
        ("classical_h=0", "classical_h=0 (02_lnp): must be > 0"),
    ],
)
def test_out_of_range_values_are_refused_before_running(run_all, setting: str, needle: str) -> None:
    with pytest.raises(SystemExit) as e:
        run_all.main(["--profile", "smoke", "--set", setting, "--list"])
    assert needle in str(e.value.code) and "--set" in str(e.value.code)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("name: x\nruns:\n  - notebook: 06_paper\n    params: {publish: [\n", ":5:1: YAML syntax error"),
        ("name: x\nruns:\n\t- notebook: 06_paper\n", ":3:1: YAML syntax error"),
        ("name: x\nruns:\n  - notebook: 06_paper\n    grid:\n      publish: true\n", ":4: `grid` of run 1"),
        ("name: x\nallow_fallbacks: maybe\nruns:\n  - notebook: 06_paper\n", ":2: `allow_fallbacks` must be"),
        ("name: ../../x\nruns:\n  - notebook: 06_paper\n", ":1: `name: ../../x` may hold only"),
        (
            "name: x\ngrids: {06_paper: {publish: true}}\nruns:\n  - notebook: 06_paper\n",
            ":2: `grids: 06_paper:`",
        ),
    ],
    ids=["syntax", "tab", "grid-mapping", "bool", "unsafe-name", "grids-mapping"],
)
def test_profile_errors_are_one_line_with_file_and_line(
    run_all, tmp_path: Path, text: str, needle: str
) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SystemExit) as e:
        run_all.main(["--profile", str(p), "--list"])
    msg = str(e.value.code)
    assert "\n" not in msg and f"profile {p}{needle}" in msg, msg


def test_base_profile_name_is_not_passed_to_the_notebooks(run_all, tmp_path: Path) -> None:
    p = tmp_path / "mine.yaml"
    p.write_text("base: smoke\nname: mine\ndescription: smoke under another name\n")
    runs = run_all.expand(run_all.check_profile(run_all.load_profile(str(p)), str(p)), None, {})
    assert {r["parameters"]["profile"] for r in runs} == {"mine"}


def test_run_all_into_a_read_only_folder_is_one_line(tmp_path: Path, small_fs, monkeypatch) -> None:
    import subprocess
    import sys

    from test_integrity_run import one_line_error

    from dfig import paths

    ro = small_fs("1m", ro=True)
    env = {**__import__("os").environ, "DFIG_REPORTS": str(ro / "reports")}
    cmd = [sys.executable, str(paths.root() / "run_all.py"), "--only", "01"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=paths.root())
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    assert "Read-only file system" in line and str(ro / "reports") in line


def test_a_full_disk_during_the_paper_rebuild_is_one_line(
    run_all, tmp_path: Path, monkeypatch, capsys
) -> None:
    import errno

    from dfig import paths
    from dfig.report import paper

    pdf = paths.reports_dir("smoke") / "DFIG_v2.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(b"%PDF old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(pdf.parent / "paper" / "main.pdf"))

    monkeypatch.setattr(paper, "build_paper", full)
    monkeypatch.setattr(
        run_all, "main", lambda argv: print(run_all.paper_line({"name": "smoke"}, [], 0, True))
    )
    assert run_all.cli([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rebuilding the paper failed" in err and "no space left" in err
    assert str(pdf.parent / "paper" / "main.pdf") in err
