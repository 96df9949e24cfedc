"""The paper says what ran: its training text is built from the runs' recorded options (and checked against
them here, for the sample and paper profiles), the counts table holds the recorded counts, the build stamp
says "modified" only for code changes, and Table 3 names what each of our rows is."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dfig import io, paths
from dfig.report import manifest, paper, recipe, tables
from dfig.stages.train import TrainOptions


def _clauses(text: str) -> dict[str, str]:
    """The recipe text cut at its setting names (``Learning rate: ...``)."""
    names = [n.capitalize() for n, _ in recipe.SETTINGS]
    pat = "|".join(re.escape(n) for n in names)
    parts = re.split(rf"(?:^|\. )({pat}): ", text.split("): ", 1)[1])
    return {parts[i].lower(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _numbers(s: str) -> set[float]:
    return {float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?", s)}


def check_text_against_records(text: str, metas: dict[str, dict[str, Any]]) -> None:
    """Fail when a value the text states disagrees with the records (or a recorded value is missing)."""
    c = _clauses(text)
    opts = [m["options"] for m in metas.values()]
    assert _numbers(c["learning rate"]) == {float(o["lr"]) for o in opts}
    assert _numbers(c["batch"]) == {float(o["batch_size"]) for o in opts}
    assert ("cosine" in c["schedule"]) == any(o["lr_policy"] == "cosine" for o in opts)
    assert ("divided by 10" in c["schedule"]) == any(o["lr_policy"] == "plateau" for o in opts)
    for o in opts:
        if o["lr_policy"] == "plateau":
            assert f"for {o['earlystop_epoch']} epochs" in c["schedule"]
    stated = {int(x) for x in re.findall(r"at most (\d+) epochs", c["epochs"])}
    assert stated == {int(o["epochs"]) for o in opts}
    ran = {int(x) for x in re.findall(r"ran (\d+)", c["epochs"])}
    assert ran == {int(m["epochs"]) for m in metas.values() if m.get("stopped_by")}
    for m in metas.values():
        if m.get("stopped_by"):
            assert recipe.STOP_NAMES[m["stopped_by"]] in c["epochs"]
    metric_names = {recipe.METRIC_NAMES[o["earlystop_metric"]] for o in opts}
    assert {n for n in recipe.METRIC_NAMES.values() if n in c["epoch tested"]} == metric_names
    for o in opts:
        assert f"random {o['crop_size']} px crops" in c["input"]
        if o.get("center_region"):
            assert f"central {o['center_region']} px region" in c["input"]
        assert (f"resized to {o['load_size']} px" if o["load_size"] else "native resolution") in c["input"]
        assert recipe.NORMALIZE_NAMES[o["normalize"]] in c["normalisation"]
        assert ("Gaussian blur" in c["augmentation"]) >= (o["blur_prob"] > 0)
    scratch = any(str(m.get("pretrained_used", "none")).startswith("none") for m in metas.values())
    assert ("from scratch" in c["backbone"]) == scratch


def _sample_records() -> dict[str, dict[str, Any]]:
    mdir = paths.root() / "reports" / "sample" / "metrics"  # the committed sample run
    metas = {p.stem[6:]: io.load_json(p) for p in sorted(mdir.glob("train_*.json"))}
    if not metas:
        pytest.skip("no committed sample-profile training records")
    return metas


def test_sample_text_states_the_recorded_recipe() -> None:
    metas = _sample_records()
    text = recipe.recipe_text(metas)
    check_text_against_records(text, metas)
    assert "0.0001" not in _clauses(text)["learning rate"] or any(
        m["options"]["lr"] == 1e-4 for m in metas.values()
    )


def _paper_profile_records(run_all: Any) -> dict[str, dict[str, Any]]:
    """What the paper profile's 04_train runs record as options: TrainOptions with the injected parameters."""
    profile = run_all.check_profile(run_all.load_profile("paper"), "paper")
    fields = set(asdict(TrainOptions(name="x", dataroot="x")))
    metas = {}
    for r in run_all.expand(profile, None, {}):
        if r["notebook"] != "04_train":
            continue
        kw = {k: v for k, v in r["parameters"].items() if k in fields and k not in ("name", "dataroot")}
        o = asdict(TrainOptions(name=r["name"], dataroot="x", **kw))
        metas[r["name"]] = {"options": o, "pretrained_used": "imagenet (official file)"}
    return metas


def test_paper_text_states_the_original_recipe(run_all: Any) -> None:
    metas = _paper_profile_records(run_all)
    text = recipe.recipe_text(metas)
    check_text_against_records(text, metas)
    c = _clauses(text)
    assert _numbers(c["learning rate"]) == {1e-4}, "the paper profile trains with Adam 1e-4"
    assert "divided by 10" in c["schedule"] and "accuracy" in c["schedule"]
    assert "ImageNet-pretrained" in c["backbone"]


def test_the_check_fails_on_a_wrong_value() -> None:
    metas = _sample_records()
    text = recipe.recipe_text(metas)
    wrong = text.replace(
        f"Learning rate: {next(iter(metas.values()))['options']['lr']:g}", "Learning rate: 0.0001"
    )
    with pytest.raises(AssertionError):
        check_text_against_records(wrong, metas)


def test_runs_that_differ_are_named() -> None:
    base = asdict(TrainOptions(name="a", dataroot="x"))
    metas = {
        "a": {"options": {**base, "lr": 1e-3}},
        "b": {"options": {**base, "lr": 1e-3}},
        "c": {"options": {**base, "lr": 1e-4, "blur_prob": 0.5, "jpg_prob": 0.5}},
    }
    c = _clauses(recipe.recipe_text(metas))
    assert c["learning rate"] == "0.0001 (c); 0.001 (the other runs)"
    assert "Gaussian blur (p 0.5" in c["augmentation"] and "(c)" in c["augmentation"]


def test_paper_source_prints_the_recipe_not_a_typed_one() -> None:
    src = (paths.paper_dir() / "main.typ").read_text(encoding="utf-8")
    assert 'd.at("recipe"' in src and "10^(-4)" not in src and "uncommitted" not in src


# --- counts, build stamp ------------------------------------------------------------------------


def test_counts_table_holds_the_recorded_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    from dfig.data.synthetic import generate

    monkeypatch.setenv("DFIG_PROFILE", "cnt")
    tree = generate(paths.work_dir("cnt") / "faces", n_train=6, n_eval=4, size=32, seed=1)
    (tree / "train" / "real" / "broken.png").write_bytes(b"")  # a file the stage could not read
    io.save_json(
        {"stage": "segmentation", "counts": {"inputs": 21, "outputs": 20, "failed": 1}},
        tree / "dfig_stage.json",
    )
    counts = manifest.data_counts("cnt")
    n = counts["faces"]["per_split"]
    assert counts["faces"]["skipped"] == 1
    rows = recipe.counts_rows({"data_counts": counts})
    assert rows == [["faces", *[f"{n[s]['real']} / {n[s]['fake']}" for s in ("train", "val", "test")], "1"]]
    assert n["val"]["real"] > 0 and n["train"]["real"] == n["train"]["fake"] + 1  # counted on disk


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_stamp_says_modified_only_for_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    for f in ("lib/x.py", "docs/a.md", "reports/sample/t.csv", "DFIG_v2.pdf", "run_all.py"):
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("0\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(paths, "root", lambda: repo)
    for f in ("docs/a.md", "reports/sample/t.csv", "DFIG_v2.pdf"):
        (repo / f).write_text("1\n")
    assert manifest.git_info()["dirty"] is False, "outputs and docs are not the code"
    (repo / "lib/x.py").write_text("1\n")
    info = manifest.git_info()
    assert info["dirty"] is True and info["dirty_paths"] == ["lib/x.py"]


# --- Table 3 ---------------------------------------------------------------------------------------


def _models(names: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "run": names,
            "test_acc": rng.uniform(0.5, 1, len(names)),
            "roc_auc": 0.7,
            "roc_auc_lo": 0.6,
            "roc_auc_hi": 0.8,
        }
    )


def test_table3_names_each_row_and_marks_what_was_not_trained() -> None:
    models = _models(["mobilev2_mode0", "mobilev2_lnponly", "res50_cnndet", "peer_logreg_dct"])
    rep = tables.reported()
    t3 = tables.table3_comparison(models, rep).set_index("method")
    assert list(t3.index) == [r["method"] for r in rep["table3_comparison"]]
    assert t3["reported_acc"].tolist() == [float(r["acc"]) for r in rep["table3_comparison"]]
    assert t3.loc["Wang et al. (2020)", "run"] == "res50_cnndet"
    assert t3.loc["DCT-CNN (2020)", "run"] == "peer_logreg_dct"
    assert t3.loc["Liu et al. LNP (2022)", "run"] == "mobilev2_lnponly"
    assert t3.loc["DFIG", "test_acc"] == pytest.approx(100 * models.loc[0, "test_acc"], abs=0.01)
    for m in ("AutoGAN-Spec (2019)", "Gragnaniello et al. (2021)"):
        assert t3.loc[m, "run"] == tables.NOT_TRAINED and not t3.loc[m, "trained"]
        assert np.isnan(t3.loc[m, "roc_auc"])
    row = paper.TABLE_FORMATS["table3_comparison"][1](t3.reset_index().iloc[3])
    assert row[2] == tables.NOT_TRAINED and row[4] == "-"
