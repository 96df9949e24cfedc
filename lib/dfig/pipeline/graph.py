"""The order between a profile's runs: which runs must finish before a run may start.

Notebooks form stages (01 -> 02 -> 03/04 -> 05 -> 06): every run depends on every selected run of the
earlier stages, and on nothing else, so the runs of one notebook's grid (segmentation shards, the LNP
trees, the training runs) and 03_spectra beside 04_train may run at the same time.
"""

from __future__ import annotations

import re
from typing import Any

#: the stage of each notebook; notebooks in one stage may run at the same time
STAGE_OF = {
    "01_segmentation": 0,
    "02_lnp": 1,
    "03_spectra": 2,
    "04_train": 2,
    "05_evaluate": 3,
    "06_paper": 4,
}


def stage_of(notebook: str, order: list[str]) -> float:
    """The stage of ``notebook``: :data:`STAGE_OF`, else its number prefix (``07_x`` after 06), else after
    every known stage in the order the profile lists it. Arguments: ``order`` the profile's notebooks."""
    if notebook in STAGE_OF:
        return STAGE_OF[notebook]
    m = re.match(r"(\d+)_", notebook)
    if m:
        return int(m.group(1)) - 0.5  # e.g. 07_x after 06_paper, 03_x between 03/04 and 05
    return 100 + order.index(notebook)


def dependencies(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """For each run name, the names of the runs that must finish first (all runs of earlier stages).

    Arguments: ``runs`` run_all's expanded runs (``name``, ``notebook``), in profile order.
    Returns: ``{name: [names]}`` in the same order.
    """
    order = list(dict.fromkeys(r["notebook"] for r in runs))
    stage = {r["name"]: stage_of(r["notebook"], order) for r in runs}
    return {r["name"]: [q["name"] for q in runs if stage[q["name"]] < stage[r["name"]]] for r in runs}


def dependents(deps: dict[str, list[str]], failed: str) -> list[str]:
    """Every run that depends on ``failed``, directly or not (they must not start). Returns names."""
    out: list[str] = []
    frontier = [failed]
    while frontier:
        cur = frontier.pop()
        for name, ds in deps.items():
            if cur in ds and name not in out:
                out.append(name)
                frontier.append(name)
    return out


def stages(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The runs grouped by stage, stages in order (what a stage-by-stage executor waits on)."""
    order = list(dict.fromkeys(r["notebook"] for r in runs))
    keys = sorted({stage_of(r["notebook"], order) for r in runs})
    return [[r for r in runs if stage_of(r["notebook"], order) == k] for k in keys]


__all__ = ["STAGE_OF", "dependencies", "dependents", "stage_of", "stages"]
