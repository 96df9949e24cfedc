"""Seed experiments beside a profile's runs, summarised for the paper.

An experiment is a JSON-lines file, one line per variant and seed (``benchmarks/exp_spectral.py``
appends them to ``reports/<profile>/experiments/<name>.jsonl``): the variant's ``options`` (``{}`` is the
reference, the profile's own recipe), ``seed``, ``epochs`` and ``best_val_auc``. The summary has one row
per variant: its seeds, best validation AUC per seed, mean and spread (max - min), and the decision by
the adoption rule of issue 23: a variant is adopted only when its mean exceeds the reference's by more
than the spread of the seeds of either, and each has at least :data:`MIN_SEEDS` seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dfig import io

__all__ = ["MIN_SEEDS", "read_records", "summarise", "write_summary"]

#: seeds a variant and its reference need before a decision is taken
MIN_SEEDS = 3


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The lines of an experiment file that hold a result (lines with an ``error`` are left out).

    Arguments: ``path`` of the JSON-lines file. Returns: the records, in file order.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("best_val_auc") is not None]


def _label(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "the profile's recipe (reference)"


def _decision(row: dict[str, Any], ref: dict[str, Any] | None) -> str:
    if row["is_ref"]:
        return "reference"
    if ref is None:
        return "no reference run"
    if min(row["n"], ref["n"]) < MIN_SEEDS:
        return f"undecided: fewer than {MIN_SEEDS} seeds"
    mean, spread = row["mean"], row["spread"]
    diff, bar = mean - ref["mean"], max(spread, ref["spread"])
    verdict = "adopted" if diff > bar else "not adopted"
    return f"{verdict}: {diff:+.3f} vs seed spread {bar:.3f}"


def summarise(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (variant, epochs): seeds, best val AUC per seed, mean, spread, decision.

    Arguments: ``records`` from :func:`read_records`. Returns: the summary table (reference first).
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((_label(r.get("options") or {}), int(r.get("epochs", 0))), []).append(r)
    rows = []
    for (label, epochs), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        aucs = [float(r["best_val_auc"]) for r in rs]
        rows.append({"variant": label, "epochs": epochs, "seeds": " ".join(str(r["seed"]) for r in rs)})
        rows[-1].update(val_auc=" ".join(f"{a:.3f}" for a in aucs), mean=sum(aucs) / len(aucs))
        rows[-1].update(spread=max(aucs) - min(aucs), is_ref=not rs[0].get("options"), n=len(rs))
    refs = {r["epochs"]: r for r in rows if r["is_ref"]}
    for r in rows:
        r["decision"] = _decision(r, refs.get(r["epochs"]))
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    return df.sort_values(["epochs", "is_ref"], ascending=[True, False]).drop(columns=["is_ref", "n"])


def write_summary(path: str | Path, name: str, caption: str) -> dict[str, Path]:
    """Summarise the experiment file ``path`` into ``reports/<profile>/tables/<name>.{csv,md}``.

    Arguments: the JSON-lines file, the table's name and caption. Returns: the written paths.
    """
    return io.save_table(summarise(read_records(path)), name, caption=caption, floatfmt=".3f")
