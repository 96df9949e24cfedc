"""Issue 10 for training, prediction and run_all: nothing mislabelled, nothing mixed, nothing overwritten.

Each test names the defect it guards: prediction never overwrites a training artefact (3), training
records the files it dropped (5), incomplete stages are refused (6), a one-class validation split is
refused before training (7), CLI user errors are one line with exit code 2 (10), prediction warns
about raw photos, tiny and huge images (11), run_all checks profiles and --set values (12).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dfig import io, paths

pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")

FEATURES = {"stage": "lnp", "save_mode": "compat", "denoiser": {"method": "classical"}, "complete": True}


def lnp_like(rng: np.random.Generator, size: int, sd: float) -> np.ndarray:
    """A compat-LNP-like uint8 image: mostly 0 or close to 255 (the wrapped small residuals)."""
    r = np.abs(rng.normal(0, sd, (size, size, 3))).astype(np.int64)
    return np.where(r > 0, 256 - np.minimum(r, 60), 0).astype(np.uint8)


def make_tree(
    root: Path,
    meta: dict | None = None,
    n: int = 8,
    size: int = 40,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for cls, sd in (("real", 1.0), ("fake", 4.0)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(lnp_like(rng, size, sd)).save(d / f"{cls}_{i:02d}.png")
    io.write_stage_meta(root, FEATURES if meta is None else meta)
    return root


def tiny(tree: Path, ckdir: Path, **kw):
    from dfig.stages.train import TrainOptions

    base = dict(
        name="tiny",
        dataroot=str(tree),
        arch="mobilev2",
        train_mode=0,
        batch_size=8,
        load_size=40,
        crop_size=32,
        epochs=1,
        checkpoints_dir=str(ckdir),
        num_threads=1,
        progress=False,
        device="cpu",
        bn_recalibrate=0,
        evaluate_test=False,
    )
    base.update(kw)
    return TrainOptions(**base)


def fake_checkpoint(path: Path, features: dict, **opt_kw) -> Path:
    """A checkpoint as dfig.stages.train writes it (random weights)."""
    from dfig.core.models import build_detector
    from dfig.stages.train import TrainOptions

    torch.manual_seed(0)
    model = build_detector("mobilev2", 0)
    opts = TrainOptions(
        name="p", dataroot="x", arch="mobilev2", train_mode=0, **{"load_size": 48, "crop_size": 32, **opt_kw}
    )
    d = asdict(opts)
    d["blur_sig"], d["jpg_qual"] = list(d["blur_sig"]), list(d["jpg_qual"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "config": model.config(),
            "options": d,
            "features": features,
            "threshold": 0.5,
            "epoch": 1,
            "step": 1,
        },
        path,
    )
    return path


def readonly_dir(tmp_path: Path) -> Path:
    """A folder nothing can be created in (chmod for users, /sys for root); skip when there is none."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    for cand in (d, Path("/sys")):
        try:
            (cand / "probe_dir").mkdir()
        except OSError:
            return cand
        (cand / "probe_dir").rmdir()
    pytest.skip("no read-only folder available")


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 3. prediction never overwrites a training artefact, nor anything it did not create


def test_predict_default_name_cannot_be_a_training_artefact(tmp_path: Path) -> None:
    from dfig.stages.predict import default_output_csv, main

    tree = make_tree(tmp_path / "lnp", n=2, splits=("test",))
    run = tmp_path / "ck" / "run"
    ck = fake_checkpoint(run / "model_epoch_best.pth", FEATURES)
    training_files = {
        "predictions_val.csv",
        "predictions_test.csv",
        "summary.json",
        "log.csv",
        "log.json",
        "model_epoch_best.pth",
        "model_epoch_latest.pth",
    }
    for split in ("val", "test"):
        assert default_output_csv(ck, tree / split, False).name not in training_files
        assert default_output_csv(ck, tree / split, True).name not in training_files
    (run / "predictions_test.csv").write_text("written by training\n")
    assert main(["--model_path", str(ck), "--input_dir", str(tree / "test"), "--no_progress"]) == 0
    assert (run / "predictions_test.csv").read_text() == "written by training\n"


def test_predict_refuses_an_existing_output_unless_overwrite(tmp_path: Path, capsys) -> None:
    from dfig.stages.predict import main

    tree = make_tree(tmp_path / "lnp", n=2, splits=("test",))
    ck = fake_checkpoint(tmp_path / "ck" / "model_epoch_best.pth", FEATURES)
    out = tmp_path / "out.csv"
    out.write_text("someone else's file\n")
    argv = ["--model_path", str(ck), "--input_dir", str(tree), "--output_csv", str(out), "--no_progress"]
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(out) in line and "--overwrite" in line
    assert out.read_text() == "someone else's file\n"
    assert main([*argv, "--overwrite"]) == 0
    assert len(pd.read_csv(out)) == 4


# ---------------------------------------------------------------------------------------------
# 5 + 6. the dataset's skip report and an allowed incomplete input are printed and recorded


def test_training_records_skipped_files_and_allowed_incomplete_input(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    from dfig.notebook import IncompleteStageWarning
    from dfig.stages.train import load_checkpoint
    from dfig.stages.trainrun import run_training

    monkeypatch.setenv("DFIG_PROFILE", "smoke")  # where io.save_metrics writes (run_all.main sets it too)
    tree = make_tree(tmp_path / "lnp", meta={**FEATURES, "complete": False})
    (tree / "train" / "real" / "broken.png").write_bytes(b"not a png")
    (tree / "val" / "fake" / "empty.png").write_bytes(b"")
    ctx = SimpleNamespace(
        profile="smoke",
        device="cpu",
        params={
            "arch": "mobilev2",
            "train_mode": 0,
            "batch_size": 8,
            "lr": 1e-3,
            "load_size": 40,
            "crop_size": 32,
            "epochs": 1,
            "pretrained": "none",
            "seed": 0,
            "allow_incomplete": True,
            "bn_recalibrate": 0,
            "num_threads": 1,
            "progress": False,
        },
    )
    with pytest.warns(IncompleteStageWarning, match="complete"):
        res = run_training(ctx, "skiprec", tree)
    out = capsys.readouterr().out
    assert "broken.png" in out and "empty.png" in out
    rep = res["data_report"]
    assert [Path(f["path"]).name for f in rep["train"]["failed"]] == ["broken.png"]
    assert [Path(f["path"]).name for f in rep["val"]["failed"]] == ["empty.png"]
    assert res["skipped_files"] == 2 and res["incomplete_input"]
    summary = json.loads((Path(res["paths"]["run_dir"]) / "summary.json").read_text())
    metrics = json.loads((paths.metrics_dir("smoke") / "train_skiprec.json").read_text())
    for rec in (summary, metrics):
        assert rec["data_report"]["train"]["failed"][0]["path"].endswith("broken.png")
        assert rec["incomplete_input"]
    for which in ("best", "latest"):
        ck = load_checkpoint(Path(res["paths"]["run_dir"]) / f"model_epoch_{which}.pth")
        assert ck["data_report"]["val"]["failed"][0]["path"].endswith("empty.png")
        assert ck["incomplete_input"]


# ---------------------------------------------------------------------------------------------
# 6. an incomplete stage is refused


def test_training_refuses_an_incomplete_stage(tmp_path: Path) -> None:
    from dfig.notebook import IncompleteStageError
    from dfig.stages.train import train

    tree = make_tree(tmp_path / "lnp", meta={**FEATURES, "complete": False}, n=2)
    with pytest.raises(IncompleteStageError, match="allow_incomplete") as e:
        train(tiny(tree, tmp_path / "ck"))
    assert str(tree) in str(e.value)
    assert not (tmp_path / "ck" / "tiny" / "model_epoch_latest.pth").exists()
    # an LNP tree made (completely) from an incomplete face tree is incomplete too
    nested = make_tree(
        tmp_path / "lnp2", n=2, meta={**FEATURES, "input": {"stage": "segmentation", "complete": False}}
    )
    with pytest.raises(IncompleteStageError, match="segmentation"):
        train(tiny(nested, tmp_path / "ck"))


def test_notebook_input_check_refuses_an_incomplete_stage(tmp_path: Path, monkeypatch) -> None:
    from dfig.notebook import IncompleteStageError, IncompleteStageWarning, RunContext

    monkeypatch.setenv("DFIG_PROFILE", "smoke")  # as notebook.start does
    ctx = RunContext("03_spectra", "smoke", {}, "cpu")
    lnp = ctx.stage_dir("lnp")
    lnp.mkdir(parents=True)
    io.write_stage_meta(lnp, {**FEATURES, "complete": False})
    with pytest.raises(IncompleteStageError, match="02_lnp") as e:
        ctx.require("lnp", made_by="02_lnp")
    assert str(lnp) in str(e.value) and "DFIG_ALLOW_INCOMPLETE" in str(e.value)
    io.write_stage_meta(lnp, {**FEATURES, "complete": True})
    assert ctx.require("lnp", made_by="02_lnp") == lnp and not ctx.incomplete
    io.write_stage_meta(lnp, {**FEATURES, "complete": False})
    monkeypatch.setenv("DFIG_ALLOW_INCOMPLETE", "1")
    with pytest.warns(IncompleteStageWarning):
        assert ctx.require("lnp", made_by="02_lnp") == lnp
    assert ctx.incomplete and ctx.incomplete[0]["root"] == str(lnp)
    rec = json.loads((paths.metrics_dir("smoke") / "incomplete_input_03_spectra.json").read_text())
    assert paths.resolve(rec["incomplete"][0]["root"]) == lnp  # written portable


# ---------------------------------------------------------------------------------------------
# 7. a validation split with one class is refused before training, naming the folder


@pytest.mark.parametrize("how", ["empty", "all_bad"])
def test_one_class_validation_split_is_refused_before_training(tmp_path: Path, how: str) -> None:
    from dfig.stages.train import train

    tree = make_tree(tmp_path / "lnp", n=2)
    for f in (tree / "val" / "fake").iterdir():
        if how == "empty":
            f.unlink()
        else:
            f.write_bytes(b"garbage")
    with pytest.raises(ValueError) as e:
        train(tiny(tree, tmp_path / "ck"))
    msg = str(e.value)
    assert str(tree / "val" / "fake") in msg and "fake" in msg
    if how == "all_bad":
        assert "2 bad" in msg
    assert not (tmp_path / "ck" / "tiny" / "model_epoch_latest.pth").exists(), (
        "refused before the first epoch"
    )


# ---------------------------------------------------------------------------------------------
# 10. user errors in the CLIs: one line naming problem and fix, exit code 2, no traceback


def _truncated_checkpoint(tmp_path: Path) -> Path:
    good = fake_checkpoint(tmp_path / "good" / "m.pth", FEATURES)
    bad = tmp_path / "trunc" / "model_epoch_best.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _garbage_checkpoint(tmp_path: Path) -> Path:
    bad = tmp_path / "garbage" / "model_epoch_best.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not a checkpoint at all\n" * 10)
    return bad


@pytest.mark.parametrize("make", [_truncated_checkpoint, _garbage_checkpoint], ids=["truncated", "garbage"])
def test_predict_corrupt_checkpoint_is_one_line(tmp_path: Path, capsys, make) -> None:
    from dfig.stages.predict import main

    tree = make_tree(tmp_path / "lnp", n=1, splits=("test",))
    ck = make(tmp_path)
    assert main(["--model_path", str(ck), "--input_dir", str(tree), "--no_progress"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert str(ck) in line and ("not a checkpoint" in line or "truncated" in line)
    assert "trusted" not in line


def test_predict_missing_input_and_readonly_output(tmp_path: Path, capsys) -> None:
    from dfig.stages.predict import main

    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    assert main(["--model_path", str(ck), "--input_dir", str(tmp_path / "nope"), "--no_progress"]) == 2
    assert str(tmp_path / "nope") in one_line_error(capsys.readouterr().err)
    assert main(["--model_path", str(tmp_path / "none.pth"), "--input_dir", str(tmp_path)]) == 2
    assert "none.pth" in one_line_error(capsys.readouterr().err)
    tree = make_tree(tmp_path / "lnp", n=1, splits=("test",))
    ro = readonly_dir(tmp_path)
    assert (
        main(
            [
                "--model_path",
                str(ck),
                "--input_dir",
                str(tree),
                "--output_csv",
                str(ro / "sub" / "p.csv"),
                "--no_progress",
            ]
        )
        == 2
    )
    assert "--output_csv" in one_line_error(capsys.readouterr().err)


def test_train_cli_user_errors(tmp_path: Path, capsys) -> None:
    from dfig.stages.train import main, save_checkpoint

    base = [
        "--arch",
        "mobilev2",
        "--niter",
        "1",
        "--no-progress",
        "--num_threads",
        "1",
        "--loadSize",
        "40",
        "--cropSize",
        "32",
        "--batch_size",
        "8",
    ]
    assert main([*base, "--dataroot", str(tmp_path / "missing"), "--checkpoints_dir", str(tmp_path)]) == 2
    assert str(tmp_path / "missing") in one_line_error(capsys.readouterr().err)
    tree = make_tree(tmp_path / "lnp", n=2)
    ro = readonly_dir(tmp_path)
    assert main([*base, "--dataroot", str(tree), "--checkpoints_dir", str(ro / "ck")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--checkpoints_dir" in line
    run = tmp_path / "ck" / "tiny"
    run.mkdir(parents=True)
    (run / "model_epoch_latest.pth").write_bytes(b"\x00" * 100)
    assert (
        main(
            [
                *base,
                "--dataroot",
                str(tree),
                "--checkpoints_dir",
                str(tmp_path / "ck"),
                "--name",
                "tiny",
                "--resume",
            ]
        )
        == 2
    )
    line = one_line_error(capsys.readouterr().err)
    assert "model_epoch_latest.pth" in line and "not a checkpoint" in line and "trusted" not in line
    # a checkpoint that loads but is no training checkpoint
    save_checkpoint(run / "model_epoch_latest.pth", {"weights": torch.zeros(2)})
    assert (
        main(
            [
                *base,
                "--dataroot",
                str(tree),
                "--checkpoints_dir",
                str(tmp_path / "ck"),
                "--name",
                "tiny",
                "--resume",
            ]
        )
        == 2
    )
    assert "not a dfig.stages.train checkpoint" in one_line_error(capsys.readouterr().err)


def test_lnp_cli_user_errors(tmp_path: Path, capsys) -> None:
    from dfig.stages.lnp import main

    tree = make_tree(tmp_path / "faces", n=1, splits=("test",))
    base = ["--denoiser", "classical", "--no_progress"]
    assert main([*base, "--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")]) == 2
    assert str(tmp_path / "nope") in one_line_error(capsys.readouterr().err)
    assert main([*base, "--input_dir", str(tree), "--output_dir", str(tmp_path / "o"), "--shard", "3/2"]) == 2
    assert "--shard" in one_line_error(capsys.readouterr().err)
    ro = readonly_dir(tmp_path)
    assert main([*base, "--input_dir", str(tree), "--output_dir", str(ro / "lnp")]) == 2
    assert "--output_dir" in one_line_error(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------
# 11. raw photos without --raw, tiny images, huge images


def _photo(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 3 + 40, yy * 2 + 60, (xx + yy) + 20], -1).astype(np.float64)
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def test_predict_warns_when_raw_photos_are_scored_as_lnps(tmp_path: Path) -> None:
    from dfig.stages.predict import InputMismatchWarning, predict_folder

    rng = np.random.default_rng(1)
    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    for ext in ("jpg", "png"):
        d = tmp_path / f"photos_{ext}" / "test" / "real"
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_photo(rng)).save(d / f"p{i}.{ext}")
        with pytest.warns(InputMismatchWarning, match="--raw"):
            df = predict_folder(ck, d.parent.parent)
        assert df.attrs["input_warnings"]
    # a face tree (stage record: segmentation) fed to an LNP detector
    faces = tmp_path / "faces"
    (faces / "test" / "fake").mkdir(parents=True)
    Image.fromarray(lnp_like(rng, 48, 2)).save(faces / "test" / "fake" / "a.png")
    io.write_stage_meta(faces, {"stage": "segmentation", "complete": True})
    with pytest.warns(InputMismatchWarning, match="segmentation"):
        predict_folder(ck, faces / "test")
    # the LNP tree itself: no warning
    tree = make_tree(tmp_path / "lnp", n=2, size=48, splits=("test",))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputMismatchWarning)
        assert not predict_folder(ck, tree).attrs["input_warnings"]


def test_predict_warns_about_images_smaller_than_the_crop(tmp_path: Path) -> None:
    from dfig.stages.predict import InputMismatchWarning, predict_folder

    tree = make_tree(tmp_path / "lnp", n=1, size=16, splits=("test",))
    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    with pytest.warns(InputMismatchWarning, match="smaller than"):
        df = predict_folder(ck, tree)
    assert len(df.attrs["too_small"]) == 2 and len(df) == 2


def test_huge_images_are_refused_with_a_raisable_limit(tmp_path: Path) -> None:
    from dfig.data.images import BadImageError
    from dfig.stages.predict import predict_folder

    tree = make_tree(tmp_path / "lnp", n=1, size=48, splits=("test",))
    Image.new("L", (6000, 6000)).save(tree / "test" / "fake" / "huge.png")
    ck = fake_checkpoint(tmp_path / "ck" / "m.pth", FEATURES)
    df = predict_folder(ck, tree)
    assert len(df) == 2
    [(p, reason)] = df.attrs["skipped"]
    assert p.endswith("huge.png") and "max_pixels" in reason and "6000x6000" in reason
    with pytest.raises(BadImageError, match="max_pixels"):
        predict_folder(ck, tree, policy="strict")
    df = predict_folder(ck, tree, max_pixels=40_000_000)
    assert len(df) == 3 and not df.attrs["skipped"]


# ---------------------------------------------------------------------------------------------
# 12. run_all: profiles and --set values are checked before anything runs


@pytest.mark.parametrize(
    "text,needle",
    [
        ("", "empty"),
        ("# nothing\n", "empty"),
        ("runs:\n  - notebook: 06_paper\n", "name"),
        ("- a\n- b\n", "mapping"),
        ("name: x\nruns: 3\n", "runs"),
    ],
)
def test_bad_profile_is_a_one_line_error(run_all, tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SystemExit) as e:
        run_all.main(["--profile", str(p), "--list"])
    msg = str(e.value.code)
    assert "\n" not in msg and str(p) in msg and needle in msg


@pytest.mark.parametrize(
    "setting,needle",
    [
        ("epochs=abc", "int"),
        ("epochs=2.5", "int"),
        ("arch=res18", "res50, mobilev2, res34"),
        ("train_mode=3", "lnp"),
        ("save_mode=float", "compat"),
        ("allow_fallbacks=maybe", "bool"),
        ("blur_sig=1", "list"),
    ],
)
def test_set_values_are_checked_against_type_and_choices(run_all, setting: str, needle: str) -> None:
    with pytest.raises(SystemExit) as e:
        run_all.main(["--profile", "smoke", "--set", setting, "--list"])
    msg = str(e.value.code)
    assert setting.split("=")[0] in msg and needle in msg


def test_good_set_values_pass(run_all, capsys) -> None:
    argv = [
        "--profile",
        "smoke",
        "--list",
        "--set",
        "arch=res34",
        "--set",
        "lr=1e-4",
        "--set",
        "train_mode=lnp",
        "--set",
        "max_minutes=2",
    ]
    assert run_all.main(argv) == 0
    out = capsys.readouterr().out
    assert "'lr': 0.0001" in out and "'train_mode': 'lnp'" in out


def test_profile_values_are_checked_too(run_all, tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("name: p\ncommon: {profile: p}\nruns:\n  - notebook: 04_train\n    params: {arch: vgg}\n")
    with pytest.raises(SystemExit, match="arch"):
        run_all.main(["--profile", str(p), "--list"])


def test_documented_choices_match_the_library(run_all) -> None:
    from dfig.core.denoise import DENOISERS
    from dfig.core.models import SPEC_NORMS
    from dfig.stages.lnp import SAVE_MODES
    from dfig.stages.segment import FACE_FORMATS, PROMPTS, SAM_MODEL_TYPES, SEGMENTERS
    from dfig.stages.train import ARCHS, TRAIN_MODES

    def choices(nb: str) -> dict:
        return {k: v["choices"] for k, v in run_all.notebook_parameters(nb).items() if v["choices"]}

    tr = choices("04_train")
    assert tr["arch"] == list(ARCHS) and tr["train_mode"] == list(TRAIN_MODES)
    assert tr["spectra_channels"] == [1, 3] and tr["spec_norm"] == list(SPEC_NORMS)
    seg = choices("01_segmentation")
    assert seg["segmenter"] == list(SEGMENTERS) and set(seg["prompt"]) == set(PROMPTS)
    assert seg["sam_model_type"] == list(SAM_MODEL_TYPES) and seg["face_format"] == list(FACE_FORMATS)
    ln = choices("02_lnp")
    assert ln["save_mode"] == list(SAVE_MODES) and ln["denoiser"] == list(DENOISERS)
    for nb in ("01_segmentation", "02_lnp"):
        assert choices(nb)["policy"] == ["skip", "strict"]


def test_run_all_refusal_from_the_shell_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    p = tmp_path / "empty.yaml"
    p.write_text("")
    r = subprocess.run(
        [sys.executable, str(paths.root() / "run_all.py"), "--profile", str(p), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert one_line_error(r.stderr).endswith("(see profiles/smoke.yaml)")


@pytest.mark.sample
def test_photo_vs_compat_lnp_statistics_on_real_faces(sample_dir: Path, tmp_path: Path) -> None:
    """Real 256 px faces saved as PNG look like photos; their compat LNPs (no stage record) do not."""
    from dfig.core.denoise import build_denoiser
    from dfig.stages.lnp import compat_encode, lnp_batch, prepare
    from dfig.stages.predict import input_kind_warnings

    den = prepare(build_denoiser("classical")[0], "cpu")
    photos, lnps = tmp_path / "photos", tmp_path / "lnps"
    for d in (photos, lnps):
        d.mkdir()
    for i, f in enumerate(sorted((sample_dir / "test" / "fake").glob("*.jpg"))[:3]):
        rgb = np.asarray(Image.open(f).convert("RGB"))
        Image.fromarray(rgb).save(photos / f"{i}.png")
        lnp = compat_encode(lnp_batch(den, [np.ascontiguousarray(rgb[:, :, ::-1])], "cpu")[0])
        Image.fromarray(np.ascontiguousarray(lnp[:, :, ::-1])).save(lnps / f"{i}.png")
    assert "photo-like" in input_kind_warnings(sorted(photos.glob("*.png")), photos, FEATURES, raw=False)[0]
    assert input_kind_warnings(sorted(lnps.glob("*.png")), lnps, FEATURES, raw=False) == []


def test_clean_lnps_for_a_compat_detector_and_the_reverse(tmp_path: Path) -> None:
    from dfig.stages.predict import input_kind_warnings

    (tmp_path / "a.npy").write_bytes(b"")
    assert "--save_mode compat" in input_kind_warnings([tmp_path / "a.npy"], tmp_path, FEATURES, raw=False)[0]
    clean = {**FEATURES, "save_mode": "clean"}
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    assert "clean .npy" in input_kind_warnings([tmp_path / "b.png"], tmp_path, clean, raw=False)[0]
