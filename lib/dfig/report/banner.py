"""The paper's page-1 banner: what kind of build it is (profile, stand-ins, fallbacks, runs cut short)."""

from __future__ import annotations

from typing import Any

BANNERS = {
    "smoke": "SMOKE PROFILE - SYNTHETIC DATA. This PDF was built from the generated two-class synthetic set "
    "(no real faces). Its numbers test the pipeline, not the method.",
    "sample": "SAMPLE PROFILE - a 1,000-image real face sample (FFHQ + StyleGAN), CPU training from scratch. "
    "Not the paper's setting: numbers are not comparable to the reported ones.",
    "paper-standin": "PAPER-STANDIN PROFILE - the paper profile's settings on the face sample with random "
    "stand-in weights and a short training budget: a test of every code path, not a result.",
    "paper-standin-cpu": "PAPER-STANDIN-CPU PROFILE - the CI check of paper-standin on a CPU (SAM vit_b, six photos, "
    "stand-in weights): a test of the code paths, not a result.",
}


#: why a training run stopped when its time budget, not its schedule, ended it (``stopped_by``)
CUT_SHORT = "max_minutes"


def banner(
    profile: str,
    fallbacks: list[dict[str, Any]],
    standins: list[dict[str, Any]],
    cut_short: list[str] | None = None,
) -> str:
    """The page-1 banner: the profile's line, then stand-in weights, fallbacks and runs cut short.

    Arguments: the profile name, the merged fallback and stand-in records (:mod:`dfig.report.manifest`),
    the runs a time budget stopped (``stopped_by == "max_minutes"``). Returns ``""`` when there is
    nothing to warn about (the paper profile with official files, every run to its end).
    """
    parts = [BANNERS.get(profile, "")]
    if cut_short:
        parts.append(
            f"CUT SHORT - {', '.join(cut_short)}: stopped by the time budget (max_minutes) before the end of "
            "the schedule, so their numbers depend on the machine's speed; they are shown marked and are "
            "not this profile's result."
        )
    if standins:
        names = ", ".join(sorted({str(s.get("weights") or s.get("file")) for s in standins}))
        parts.append(
            f"STAND-IN WEIGHTS - {names}: random weights in the official formats were used instead "
            "of the official checkpoints, so every number in this PDF is meaningless."
        )
    if fallbacks and profile != "paper":
        parts.append("Fallbacks were used (see the provenance appendix).")
    return " ".join(p for p in parts if p)


def cut_short_runs(train_meta: dict[str, dict[str, Any]]) -> list[str]:
    """The training runs a time budget stopped. Arguments: run -> its ``train_<run>.json``. Returns names."""
    return sorted(k for k, m in train_meta.items() if m.get("stopped_by") == CUT_SHORT)


__all__ = ["BANNERS", "CUT_SHORT", "banner", "cut_short_runs"]
