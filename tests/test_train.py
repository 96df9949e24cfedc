"""dfig.stages.train: a 2-epoch run on a tiny generated LNP tree, resume, early stopping / lr decay logic, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dfig import io
from dfig.stages.train import (
    LOG_FIELDS,
    Plateau,
    TrainOptions,
    cosine_lr,
    evaluate,
    load_checkpoint,
    options_from_args,
    rng_state,
    score_of,
    set_rng_state,
    train,
)

FEATURES = {"stage": "lnp", "save_mode": "compat", "denoiser": {"method": "classical"}, "test_tree": True}
CKPT_KEYS = {"model", "optimizer", "step", "epoch", "options", "config", "features", "threshold"}


def make_lnp_tree(root: Path, n_train: int = 16, n_eval: int = 8, size: int = 40, seed: int = 0) -> Path:
    """Tiny two-class tree of PNG "LNP" images: fakes have a stronger noise pattern than reals."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        n = n_train if split == "train" else n_eval
        for cls, sd in (("real", 12), ("fake", 40)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = np.clip(128 + rng.normal(0, sd, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(d / f"{cls}_{i:03d}.png")
    io.write_stage_meta(root, FEATURES)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lnp_tree(tmp_path_factory.mktemp("lnp_tree"))


def tiny_opts(tree: Path, ckdir: Path, **kw) -> TrainOptions:
    base = dict(
        name="tiny",
        dataroot=str(tree),
        classes="face",
        arch="mobilev2",
        train_mode=0,
        batch_size=8,
        load_size=40,
        crop_size=32,
        epochs=2,
        checkpoints_dir=str(ckdir),
        num_threads=1,
        seed=0,
        progress=False,
        device="cpu",
    )
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def run2(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainOptions, dict]:
    opts = tiny_opts(tree, tmp_path_factory.mktemp("ck"))
    return opts, train(opts)


# ---------------------------------------------------------------------------------------------
# a full (tiny) run


def test_two_epochs_log_checkpoints_predictions(run2: tuple[TrainOptions, dict]) -> None:
    opts, res = run2
    run_dir = opts.run_dir
    assert res["epochs"] == 2 and res["stopped_by"] == "epochs" and res["steps"] == 2 * 4
    # log: one row per epoch, the documented columns, finite losses
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert tuple(rows[0]) == LOG_FIELDS
    for r in rows:
        assert math.isfinite(float(r["train_loss"])) and math.isfinite(float(r["val_loss"]))
        assert 0.0 <= float(r["val_acc"]) <= 1.0 and float(r["lr"]) == pytest.approx(1e-4)
    assert json.loads((run_dir / "log.json").read_text())[1]["epoch"] == 2
    # checkpoints
    for which in ("best", "latest"):
        ck = load_checkpoint(run_dir / f"model_epoch_{which}.pth")
        assert CKPT_KEYS <= set(ck)
        assert ck["features"] == FEATURES
        assert ck["options"]["arch"] == "mobilev2" and ck["options"]["train_mode"] == 0
        assert ck["config"]["arch"] == "mobilev2" and ck["config"]["mode"] == 0
        assert 0.0 <= ck["threshold"] <= 1.0
        assert set(ck["optimizer"]) == {"state", "param_groups"}
    latest = load_checkpoint(run_dir / "model_epoch_latest.pth")
    assert latest["epoch"] == 2 and latest["step"] == 8
    assert load_checkpoint(run_dir / "model_epoch_best.pth")["epoch"] == res["best_epoch"]
    # predictions of the best checkpoint
    for split in ("val", "test"):
        df = pd.read_csv(run_dir / f"predictions_{split}.csv")
        assert list(df.columns) == ["path", "label", "p_fake", "pred"]
        assert len(df) == 16 and sorted(df["label"].unique()) == [0, 1]
        assert df["p_fake"].between(0, 1).all()
        assert (df["pred"] == (df["p_fake"] > 0.5).astype(int)).all()
        assert all(Path(p).is_file() for p in df["path"])
    assert set(res["test_metrics"]) >= {"acc", "ap", "roc_auc", "eer"}
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2


def test_best_checkpoint_loads_with_models_api(run2: tuple[TrainOptions, dict]) -> None:
    from dfig.core.models import load_detector

    opts, _ = run2
    model, ck = load_detector(
        opts.run_dir / "model_epoch_best.pth", "cpu", expect_arch="mobilev2", expect_mode=0
    )
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2,)
    assert ck["features"] == FEATURES


def test_resume_continues_from_epoch_2(tree: Path, tmp_path: Path) -> None:
    opts = tiny_opts(tree, tmp_path, epochs=2)
    train(opts)
    first = load_checkpoint(opts.run_dir / "model_epoch_latest.pth")
    res = train(tiny_opts(tree, tmp_path, epochs=3, resume=True))
    assert res["start_epoch"] == 2 and res["epochs"] == 3 and res["steps"] == 12
    rows = list(csv.DictReader(open(opts.run_dir / "log.csv", newline="")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    latest = load_checkpoint(opts.run_dir / "model_epoch_latest.pth")
    assert latest["epoch"] == 3 and latest["step"] == 12
    changed = any(not torch.equal(first["model"][k], latest["model"][k]) for k in first["model"])
    assert changed


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(tree: Path, tmp_path: Path) -> None:
    """2 epochs + resume to 3 gives the same weights as 3 epochs in one go (model, optimiser, RNG restored)."""
    a = tiny_opts(tree, tmp_path / "a", epochs=3, evaluate_test=False)
    train(a)
    b = tiny_opts(tree, tmp_path / "b", epochs=2, evaluate_test=False)
    train(b)
    train(tiny_opts(tree, tmp_path / "b", epochs=3, resume=True, evaluate_test=False))
    sa = load_checkpoint(a.run_dir / "model_epoch_latest.pth")["model"]
    sb = load_checkpoint(b.run_dir / "model_epoch_latest.pth")["model"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], msg=f"{k} differs after resume")


def test_resume_without_checkpoint_is_a_clear_error(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_epoch_latest.pth"):
        train(tiny_opts(tree, tmp_path, resume=True))


def test_max_minutes_stops_after_the_crossing_epoch(tree: Path, tmp_path: Path) -> None:
    res = train(tiny_opts(tree, tmp_path, epochs=5, max_minutes=1e-6, evaluate_test=False))
    assert res["stopped_by"] == "max_minutes" and res["epochs"] == 1


def test_evaluate_returns_labels_and_probabilities() -> None:
    class Const(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(1, 2, 3))

    x = torch.cat([torch.full((3, 3, 8, 8), -2.0), torch.full((3, 3, 8, 8), 2.0)])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    yy, pp = evaluate(Const(), loader, "cpu")
    assert yy.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(pp, [1 / (1 + math.exp(2))] * 3 + [1 / (1 + math.exp(-2))] * 3, rtol=1e-6)
    # grid multi-crop of a constant image gives the same score
    _, pg = evaluate(Const(), loader, "cpu", crop=4, grid=3)
    np.testing.assert_allclose(pg, pp, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# early stopping / lr decay logic (fake metric sequences)


def test_plateau_patience_decay_and_stop() -> None:
    p = Plateau(patience=2, delta=0.001, factor=10, min_lr=1e-6)
    lr = 1e-4
    actions = []
    for score in [0.6, 0.7, 0.7005, 0.69, 0.71, 0.70, 0.70, 0.70, 0.70]:
        a = p.step(score, lr)
        if a == "decay":
            lr /= 10
        actions.append(a)
    # 0.7005 is not an improvement larger than delta; two waits -> decay; 0.71 improves again
    # the last plateau would take the lr from 1e-6 to 1e-7 < min_lr: stop (CNNDetection's rule)
    assert actions == ["improved", "improved", "wait", "decay", "improved", "wait", "decay", "wait", "stop"]
    assert p.best == pytest.approx(0.71) and lr == pytest.approx(1e-6) and p.decays == 2


def test_plateau_stops_when_lr_would_fall_below_min() -> None:
    p = Plateau(patience=1, min_lr=1e-6)
    assert p.step(0.9, 1e-4) == "improved"
    assert [p.step(0.5, lr) for lr in (1e-4, 1e-5, 1e-6)] == ["decay", "decay", "stop"]


def test_plateau_loss_mode_and_state_roundtrip() -> None:
    p = Plateau(patience=3, mode="min")
    assert p.step(1.0, 1e-4) == "improved" and p.step(0.5, 1e-4) == "improved" and p.step(0.6, 1e-4) == "wait"
    q = Plateau()
    q.load_state_dict(p.state_dict())
    assert q.best == 0.5 and q.counter == 1 and q.mode == "min" and q.patience == 3


def test_score_of_criteria() -> None:
    m = {"acc": 0.8, "roc_auc": 0.9, "ap": 0.85, "loss": 0.4}
    assert [score_of(m, c) for c in ("acc", "auc", "ap", "loss")] == [0.8, 0.9, 0.85, 0.4]
    assert score_of({"roc_auc": float("nan")}, "auc") == -math.inf


def test_cosine_schedule() -> None:
    assert cosine_lr(1e-3, 0, 10) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 5, 10) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 0, 10, warmup=2) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 10, 10, floor=1e-6) == pytest.approx(1e-6)


def test_rng_state_roundtrip_is_weights_only_safe(tmp_path: Path) -> None:
    st = rng_state()
    torch.save(st, tmp_path / "rng.pth")
    a = (np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    b = (np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    assert a == b


# ---------------------------------------------------------------------------------------------
# options and CLI


def test_cli_flags_map_to_options(tmp_path: Path) -> None:
    o = options_from_args(
        [
            "--name",
            "n",
            "--dataroot",
            "D",
            "--classes",
            "face",
            "--arch",
            "res34",
            "--train_mode",
            "2",
            "--blur_sig",
            "0.5,1.5",
            "--jpg_qual",
            "75",
            "--no_flip",
            "--pretrained",
            "none",
            "--max_minutes",
            "4.5",
        ]
    )
    assert (o.name, o.dataroot, o.arch, o.train_mode, o.no_flip) == ("n", "D", "res34", 2, True)
    assert o.blur_sig == (0.5, 1.5) and o.jpg_qual == (75, 75)
    assert o.pretrained is None and o.max_minutes == 4.5
    assert options_from_args(["--dataroot", "D", "--train_mode", "lnp"]).train_mode == "lnp"


@pytest.mark.parametrize(
    "bad", [dict(arch="vgg"), dict(train_mode=7), dict(earlystop_metric="f1"), dict(dataroot="")]
)
def test_bad_options_are_named(bad: dict) -> None:
    o = TrainOptions(**{"dataroot": "D", **bad})
    with pytest.raises(ValueError, match=next(iter(bad))):
        o.validate()


def test_default_checkpoints_dir_follows_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DFIG_WORK", str(tmp_path))
    assert TrainOptions(name="x", profile="sample").run_dir == tmp_path / "sample" / "checkpoints" / "x"


def test_missing_split_is_named(tmp_path: Path) -> None:
    (tmp_path / "train" / "real").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="train"):
        train(tiny_opts(tmp_path, tmp_path / "ck"))


def test_center_region_for_images_and_arrays() -> None:
    from dfig.stages.train import center_region

    arr = np.arange(10 * 12 * 3, dtype=np.float32).reshape(10, 12, 3)
    np.testing.assert_array_equal(center_region(arr, 4), arr[3:7, 4:8])
    img = Image.fromarray(arr.astype(np.uint8))
    assert center_region(img, 4).size == (4, 4)
    np.testing.assert_array_equal(np.asarray(center_region(img, 4)), np.asarray(img)[3:7, 4:8])
    assert center_region(arr, 20) is arr and center_region(arr, None) is arr


def test_train_with_center_region_and_grid_eval(tree: Path, tmp_path: Path) -> None:
    res = train(
        tiny_opts(tree, tmp_path, epochs=1, center_region=36, crop_size=24, eval_crop="grid", eval_grid=2)
    )
    assert res["epochs"] == 1 and len(pd.read_csv(res["predictions"]["test"])) == 16
    assert load_checkpoint(Path(res["paths"]["best"]))["options"]["center_region"] == 36


def test_per_frequency_spectral_statistics_are_fitted_stored_and_used_by_predict(
    tree: Path, tmp_path: Path
) -> None:
    """spec_norm='freq': mean/std per frequency measured on the training split before training, stored
    in the checkpoint, and the same model (statistics included) scores through predict_folder."""
    from dfig.core.models import load_detector
    from dfig.stages.predict import predict_folder

    res = train(tiny_opts(tree, tmp_path, epochs=1, spec_norm="freq", spec_coords=True, no_flip=True))
    best = Path(res["paths"]["best"])
    ck = load_checkpoint(best)
    assert ck["config"]["spec_norm"] == "freq" and ck["config"]["spec_size"] == 32
    assert ck["config"]["spec_coords"] is True and ck["config"]["in_channels"] == 7
    sd = ck["model"]
    assert int(sd["spec_norm.count"]) == 32  # the 32 training images, once each
    assert sd["spec_norm.mean"].shape == (2, 32, 32) and float(sd["spec_norm.std"].min()) > 0
    model, _ = load_detector(best)
    assert model.spec_norm.fitted
    torch.testing.assert_close(model.spec_norm.mean, sd["spec_norm.mean"])
    df = predict_folder(best, tree / "test", batch_size=8)
    ref = pd.read_csv(res["predictions"]["test"]).set_index("path")["p_fake"]
    got = df.set_index("path")["p_fake"]
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        {"spec_norm": "freq", "eval_crop_size": 24},
        {"spec_norm": "freq", "eval_crop": "full"},
        {"spec_norm": "freq", "no_crop": True},
    ],
)
def test_per_frequency_statistics_need_the_training_crop_size(bad: dict, tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spec_norm='freq'"):
        tiny_opts(tree, tmp_path, **bad).validate()
