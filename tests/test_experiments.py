"""Seed experiments reach the paper as recorded: the summary's means, spreads and decisions follow the
adoption rule (a variant is adopted only beyond the seeds' spread), and the paper's sentence on mode 0
against the best classical peer is computed from the models table, whichever way it falls."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dfig import paths
from dfig.report import experiments, paper


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def _line(options: dict, seed: int, auc: float, epochs: int = 3) -> dict:
    return {"options": options, "seed": seed, "epochs": epochs, "best_val_auc": auc}


def test_summary_adopts_only_beyond_the_seed_spread(tmp_path: Path) -> None:
    lines = [_line({}, s, a) for s, a in enumerate((0.60, 0.62, 0.61))]
    lines += [_line({"spec_norm": "freq"}, s, a) for s, a in enumerate((0.61, 0.64, 0.62))]  # +0.013
    lines += [_line({"spec_coords": True}, s, a) for s, a in enumerate((0.70, 0.71, 0.72))]  # +0.10
    lines += [{"options": {"x": 1}, "seed": 0, "epochs": 3, "error": "crashed"}]  # a failed job: left out
    df = experiments.summarise(experiments.read_records(_write(tmp_path / "e.jsonl", lines)))
    rows = {r["variant"]: r for _, r in df.iterrows()}
    assert list(df["variant"])[0] == "the profile's recipe (reference)" and len(df) == 3
    ref = rows["the profile's recipe (reference)"]
    assert ref["mean"] == pytest.approx(0.61) and ref["spread"] == pytest.approx(0.02)
    assert (
        ref["decision"] == "reference" and ref["seeds"] == "0 1 2" and ref["val_auc"] == "0.600 0.620 0.610"
    )
    assert rows["spec_norm=freq"]["decision"].startswith("not adopted: +0.013 vs seed spread 0.030")
    assert rows["spec_coords=True"]["decision"].startswith("adopted: +0.100")


def test_summary_compares_each_schedule_with_its_own_reference(tmp_path: Path) -> None:
    lines = [_line({}, s, 0.60, epochs=3) for s in range(3)] + [
        _line({}, s, 0.70, epochs=8) for s in range(3)
    ]
    lines += [_line({"a": 1}, s, 0.65, epochs=e) for s in range(3) for e in (3, 8)]
    lines += [_line({"b": 1}, s, 0.99, epochs=3) for s in range(2)]  # two seeds: no decision yet
    df = experiments.summarise(experiments.read_records(_write(tmp_path / "e.jsonl", lines)))
    dec = {(r["variant"], r["epochs"]): r["decision"] for _, r in df.iterrows()}
    assert dec[("a=1", 3)].startswith("adopted: +0.050") and dec[("a=1", 8)].startswith("not adopted: -0.050")
    assert dec[("b=1", 3)] == "undecided: fewer than 3 seeds"


def test_the_summary_is_a_paper_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIG_PROFILE", "exp")
    lines = [_line({}, s, 0.6 + s / 100) for s in range(3)] + [_line({"b": 2}, s, 0.5) for s in range(3)]
    experiments.write_summary(_write(tmp_path / "e.jsonl", lines), "experiments_spectral", "Seeds.")
    t = paper.format_tables("exp")["experiments_spectral"]
    assert t["header"][-1] == "decision" and t["rows"][0][:4] == [
        "the profile's recipe (reference)",
        "3",
        "0 1 2",
        "0.600 0.610 0.620",
    ]
    assert (
        t["rows"][1][-1].startswith("not adopted: -0.110 vs seed spread 0.020") and t["caption"] == "Seeds."
    )


def _models(profile: str, mode0: tuple[float, float, float], peer: tuple[float, float, float]) -> None:
    rows = [("mobilev2_mode0", "DFIG", "MobileNetV2", *mode0), ("peer_x", "peer", "logistic X", *peer)]
    df = pd.DataFrame(rows, columns=["run", "family", "backbone", "roc_auc", "roc_auc_lo", "roc_auc_hi"])
    paths.tables_dir(profile).mkdir(parents=True, exist_ok=True)
    df.to_csv(paths.tables_dir(profile) / "models.csv", index=False)


@pytest.mark.parametrize(
    ("mode0", "peer", "says"),
    [
        (
            (0.55, 0.47, 0.64),
            (0.66, 0.58, 0.73),
            "below the best classical peer (logistic X, 0.660 [0.580, 0.730]) by 0.110, but the 95% intervals overlap",
        ),
        (
            (0.90, 0.85, 0.95),
            (0.66, 0.58, 0.73),
            "above the best classical peer (logistic X, 0.660 [0.580, 0.730]) by 0.240, and the 95% intervals do not overlap",
        ),
    ],
)
def test_the_verdict_on_mode0_comes_from_the_models_table(monkeypatch, mode0, peer, says) -> None:
    monkeypatch.setenv("DFIG_PROFILE", "verdict")
    _models("verdict", mode0, peer)
    best = {"mode0_run": "mobilev2_mode0", "mode0_auc": paper.fmt_ci(*mode0)}
    text = paper.peer_verdict("verdict", best)
    assert text.startswith(
        f"The fusion-mode-0 detector (mobilev2_mode0, test ROC-AUC {paper.fmt_ci(*mode0)}) is"
    )
    assert says in text
    assert paper.peer_verdict("verdict", {}) == ""  # no mode-0 run: no sentence
