"""One vocabulary for the training settings (issue 9, part 1) and the TrainState object (part 2).

TrainOptions holds every default; the 04_train notebook declares the same names with the same
defaults; profiles use only those names (a wrong one is refused before anything runs, naming the
profile file and the key); the original DFIG/CNNDetection flags work on the command line only, and
checkpoints that stored the old option names still load.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from dfig import paths
from dfig.stages.train import (
    Plateau,
    TrainOptions,
    TrainState,
    augment_options,
    build_parser,
    jsonable_options,
    options_from_args,
    options_from_dict,
)
from dfig.stages.trainrun import RUN_FIELDS, notebook_option_names, options_from_params

OLD_NAMES = ("niter", "cropSize", "loadSize", "no_resize", "eval_cropSize", "extra_options")


def notebook_defaults() -> dict[str, object]:
    nb = json.loads((paths.notebooks_dir() / "04_train.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}


def test_notebook_declares_every_option_with_the_trainoptions_default() -> None:
    declared, defaults = notebook_defaults(), TrainOptions()
    for name in notebook_option_names():
        assert name in declared, f"04_train has no parameter {name!r}"
        want = getattr(defaults, name)
        got = declared[name]
        assert (list(got) if isinstance(want, tuple) else got) == (
            list(want) if isinstance(want, tuple) else want
        ), f"{name}: notebook default {got!r} != TrainOptions default {want!r}"
    assert not set(OLD_NAMES) & set(declared)
    assert {"dataroot", "classes", "checkpoints_dir"} <= set(RUN_FIELDS)
    assert not {"dataroot", "classes"} & set(declared)


def test_old_checkpoint_option_names_still_load() -> None:
    old = {"niter": 7, "cropSize": 96, "loadSize": 128, "no_resize": False, "eval_cropSize": 80, "gone": 1}
    o = options_from_dict({"dataroot": "D", **old})
    assert (o.epochs, o.crop_size, o.load_size, o.eval_crop_size) == (7, 96, 128, 80)
    assert options_from_dict({"loadSize": 256, "no_resize": True}).load_size == 0
    new = jsonable_options(TrainOptions(dataroot="D", epochs=3, load_size=0))
    assert options_from_dict(new) == TrainOptions(dataroot="D", epochs=3, load_size=0)
    assert not set(OLD_NAMES) & set(new)


def test_original_flags_are_cli_aliases_documented_in_help() -> None:
    o = options_from_args(
        ["--dataroot", "D", "--niter", "3", "--cropSize", "64", "--loadSize", "80", "--batchSize", "4"]
        + ["--eval_cropSize", "48"]
    )
    assert (o.epochs, o.crop_size, o.load_size, o.batch_size, o.eval_crop_size) == (3, 64, 80, 4, 48)
    assert options_from_args(["--dataroot", "D", "--loadSize", "80", "--no_resize"]).load_size == 0
    assert options_from_args(["--dataroot", "D", "--epochs", "2", "--crop_size", "32"]).crop_size == 32
    helptext = " ".join(build_parser().format_help().split())
    for old in ("--niter", "--cropSize", "--loadSize", "--no_resize", "--batchSize", "--eval_cropSize"):
        assert old in helptext


def test_load_size_zero_means_no_resize() -> None:
    aug = augment_options(TrainOptions(dataroot="D", load_size=0, crop_size=64))
    assert aug.no_resize and aug.crop_size == 64
    assert not augment_options(TrainOptions(dataroot="D", load_size=96)).no_resize
    with pytest.raises(ValueError, match="load_size"):
        TrainOptions(dataroot="D", load_size=-1).validate()


def test_trainrun_passes_only_named_parameters(tmp_path: Path) -> None:
    ctx = type("Ctx", (), {"params": {"arch": "res34", "epochs": 2, "amp": True}, "device": "cpu"})()
    ctx.profile = "smoke"
    o = options_from_params(ctx, "r", tmp_path, None)
    assert (o.arch, o.epochs, o.amp, o.name, o.device) == ("res34", 2, True, "r", "cpu")
    assert o.crop_size == TrainOptions.crop_size and o.lr == TrainOptions.lr  # the one default
    ctx.params = {"extra_options": {"amp": True}}
    assert options_from_params(ctx, "r", tmp_path, None).amp is False  # no back door


@pytest.mark.parametrize("key", ["niter", "cropSize", "extra_options"])
def test_profile_with_an_old_training_key_is_refused_naming_file_and_key(
    run_all, tmp_path: Path, key: str
) -> None:
    prof = tmp_path / "old.yaml"
    prof.write_text(
        "name: old\nruns:\n  - notebook: 04_train\n"
        f"    params: {{epochs: 1, {key}: {{}}}}\n"
        "    grid:\n      - {arch: mobilev2, train_mode: 0}\n",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as e:
        run_all.main(["--profile", str(prof), "--list"])
    msg = str(e.value.code)
    assert str(prof) in msg and key in msg and "04_train" in msg


@pytest.mark.parametrize("name", ["smoke", "sample", "paper", "paper-standin", "paper-standin-cpu"])
def test_profiles_use_only_known_training_keys(run_all, name: str) -> None:
    runs = [r for r in run_all.expand(run_all.load_profile(name), None, {}) if r["notebook"] == "04_train"]
    run_all.check_parameters(runs)
    for r in runs:
        assert not set(OLD_NAMES) & set(r["parameters"])


def test_train_state_roundtrip() -> None:
    def make() -> TrainState:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        return TrainState(model, opt, Plateau(patience=2))

    a = make()
    a.model(torch.randn(4, 3)).sum().backward()
    a.optimizer.step()
    a.step, a.epoch, a.best_threshold, a.best_val = 5, 2, 0.3, {"acc": 0.7}
    a.scheduler.step(0.7, 1e-3, 2)
    a.scheduler.step(0.6, 1e-3, 3)
    a.log = [{"epoch": 1}, {"epoch": 2}]
    ck = a.state_dict()
    keys = {"model", "optimizer", "step", "epoch", "plateau", "best_threshold", "best_val_metrics", "log"}
    assert keys <= set(ck)
    b = make()
    b.load_state_dict(ck, restore_rng=False)
    assert (b.step, b.epoch, b.best_threshold, b.best_val, b.log) == (5, 2, 0.3, {"acc": 0.7}, a.log)
    assert (b.scheduler.best, b.scheduler.counter, b.scheduler.best_epoch) == (0.7, 1, 2)
    assert torch.equal(b.model.weight, a.model.weight)
    assert b.optimizer.state_dict()["state"][0]["step"] == a.optimizer.state_dict()["state"][0]["step"]
    assert dataclasses.is_dataclass(b)


def test_checkpoint_written_with_the_old_option_names_loads_for_inference(tmp_path: Path) -> None:
    from dfig.core.models import build_detector
    from dfig.stages.predict import load_for_inference

    model = build_detector("mobilev2", 0)
    old = {"arch": "mobilev2", "train_mode": 0, "niter": 4, "loadSize": 256, "cropSize": 96}
    old.update(no_resize=True, eval_cropSize=80, center_region=120)
    ck = {"model": model.state_dict(), "config": model.config(), "options": old, "epoch": 4, "step": 8}
    torch.save(ck, tmp_path / "old.pth")
    _, _, o = load_for_inference(tmp_path / "old.pth")
    assert (o.epochs, o.load_size, o.crop_size, o.eval_crop_size, o.center_region) == (4, 0, 96, 80, 120)
    aug = augment_options(o, for_eval=True)
    assert aug.no_resize and aug.crop_size == 80


def test_predict_uses_the_same_names_and_keeps_the_original_flags() -> None:
    from dfig.stages.predict import build_parser

    base = ["--model_path", "m.pth", "--input_dir", "d"]
    ours = build_parser().parse_args([*base, "--arch", "res50", "--train_mode", "1"])
    original = build_parser().parse_args([*base, "--backbone", "res50", "--mode", "1"])
    assert (ours.arch, ours.train_mode) == (original.arch, original.train_mode) == ("res50", "1")
    assert "--backbone" in build_parser().format_help() and "--mode" in build_parser().format_help()
