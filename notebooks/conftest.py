"""``pytest --nbval-lax notebooks``: every notebook runs as the smoke profile's first run of it.

- The kernels write under a temporary folder: without this, an nbval run would overwrite
  ``reports/smoke`` and ``work/smoke`` made by ``make reproduce``. ``DFIG_REPORTS``/``DFIG_WORK`` (see
  :mod:`dfig.paths`) set by the caller (``make nbval`` sets them) are kept.
- The parameters: a notebook's ``parameters`` cell holds the library's defaults (for ``04_train``,
  :class:`dfig.stages.train.TrainOptions`'s, the paper's recipe: ResNet-50, 100 epochs). nbval checks
  the notebooks at the smoke profile's size instead: the values ``run_all.py --profile smoke`` gives
  the notebook's first run are appended to the ``parameters`` cell, as papermill's injected cell
  would set them. One place for each value: the profile.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "smoke"


def pytest_configure(config: pytest.Config) -> None:
    """Point DFIG_REPORTS/DFIG_WORK at a fresh temporary folder unless the caller chose them."""
    if os.environ.get("DFIG_REPORTS") or os.environ.get("DFIG_WORK"):
        return
    base = tempfile.mkdtemp(prefix="dfig-nbval-")
    os.environ["DFIG_REPORTS"] = os.path.join(base, "reports")
    os.environ["DFIG_WORK"] = os.path.join(base, "work")
    print(f"nbval: notebooks write under {base}")


def profile_parameters(profile: str = PROFILE) -> dict[str, dict[str, Any]]:
    """``{notebook: parameters}`` of each notebook's first run in ``profile``, as run_all.py gives them."""
    import papermill as pm

    spec = importlib.util.spec_from_file_location("run_all", ROOT / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    first: dict[str, dict[str, Any]] = {}
    for run in run_all.expand(run_all.load_profile(profile), None, {}):
        if run["notebook"] not in first:
            declared = pm.inspect_notebook(str(ROOT / "notebooks" / f"{run['notebook']}.ipynb"))
            first[run["notebook"]] = {k: v for k, v in run["parameters"].items() if k in declared}
    return first


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Append the smoke profile's values to each notebook's ``parameters`` cell (nbval items only)."""
    cells = [
        i for i in items if "parameters" in getattr(getattr(i, "cell", None), "metadata", {}).get("tags", [])
    ]
    if not cells:
        return
    params = profile_parameters()
    for item in cells:
        given = params.get(Path(str(item.path)).stem, {})
        if given:
            lines = [f"{k} = {v!r}" for k, v in given.items()]
            item.cell.source += (
                f"\n# profiles/{PROFILE}.yaml, first run (notebooks/conftest.py)\n" + "\n".join(lines)
            )
