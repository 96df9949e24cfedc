"""The record of one run the evaluation reads (:class:`Run`): below both :mod:`dfig.report.evaluate`,
which loads the runs, and :mod:`dfig.report.tables`, which builds the tables from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from dfig.core.metrics import compute_metrics
from dfig.core.models.backbones import BACKBONE_NAMES

#: display names of the classical peers' models and features (``arch``/``features`` of ``peer_*.json``)
PEER_MODEL_NAMES = {"logreg": "logistic regression", "hgb": "gradient boosting"}
PEER_FEATURE_NAMES = {
    "dct": "log-DCT of the photo",
    "spec2d": "2-D log spectrum",
    "spec1d": "1-D radial spectrum",
    "stats": "residual stats",
}


@dataclass
class Run:
    """One training run: its metrics JSON and its per-image predictions."""

    name: str
    meta: dict[str, Any]
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])

    @property
    def mode(self) -> str:
        return str(self.meta["train_mode"])

    @property
    def tag(self) -> str:
        return str(self.meta.get("tag") or "")

    @property
    def family(self) -> str:
        """``peer`` (a classical peer), ``baseline`` (RGB faces or photos, no LNP) or ``DFIG``."""
        if self.mode == "peer":
            return "peer"
        feats = str(self.meta.get("features") or "lnp")  # a photo or face tree (no LNP): a baseline
        return "baseline" if not feats.startswith("lnp") or self.tag == "rgb" else "DFIG"

    @property
    def display_name(self) -> str:
        """The backbone (DFIG, baseline) or the model and its features (peer), for tables and legends."""
        if self.family != "peer":
            return BACKBONE_NAMES.get(self.arch, self.arch)
        feats = str(self.meta.get("features", ""))
        return f"{PEER_MODEL_NAMES.get(self.arch, self.arch)} ({PEER_FEATURE_NAMES.get(feats, feats)})"

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))

    def metrics(self, split: str = "test", threshold: float = 0.5) -> dict[str, float]:
        df = self.test if split == "test" else self.val
        return compute_metrics(df["label"].to_numpy(), df["p_fake"].to_numpy(), threshold)


__all__ = ["PEER_FEATURE_NAMES", "PEER_MODEL_NAMES", "Run"]
