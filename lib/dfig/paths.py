"""Every path the project uses, derived from one place.

The project root is found once (``DFIG_ROOT`` environment variable, else the first parent of the
current directory or of this file that holds ``pyproject.toml`` and ``run_all.py``). Everything else
is derived from it, from the profile name, or from an environment variable documented here:

========================  =====================================  ==============================
name                      default                                override
========================  =====================================  ==============================
``root()``                the repository                         ``DFIG_ROOT``
``reports_dir(profile)``  ``<root>/reports/<profile>``           ``DFIG_REPORTS`` (parent folder)
``work_dir(profile)``     ``<root>/work/<profile>``              ``DFIG_WORK`` (parent folder)
``weights_dir()``         ``<root>/pretrained``                  ``DFIG_WEIGHTS``
``sample_data_dir()``     ``<root>/../shared/data/faces140k-sample``  ``DFIG_SAMPLE_DATA``
========================  =====================================  ==============================
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_MARKERS = ("pyproject.toml", "run_all.py")


def _is_root(p: Path) -> bool:
    return all((p / m).exists() for m in _MARKERS)


@cache
def root() -> Path:
    """The project root (the folder holding ``pyproject.toml`` and ``run_all.py``)."""
    env = os.environ.get("DFIG_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            if _is_root(p):
                return p
    raise RuntimeError("Cannot find the DFIG project root: run from inside the repository or set DFIG_ROOT.")


def _env_path(name: str, default: Path) -> Path:
    v = os.environ.get(name)
    return Path(v).expanduser().resolve() if v else default


def current_profile() -> str:
    """The active profile: ``DFIG_PROFILE`` (set by run_all.py and notebooks), default ``smoke``."""
    return os.environ.get("DFIG_PROFILE", "smoke") or "smoke"


def reports_dir(profile: str | None = None) -> Path:
    """Regenerated results of one profile: figures/, tables/, metrics/, executed/, manifest.json.

    Each profile has its own folder (``reports/smoke``, ``reports/sample``, ``reports/paper``), so a
    quick smoke run never overwrites real-data results.
    """
    return _env_path("DFIG_REPORTS", root() / "reports") / (profile or current_profile())


def figures_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "figures"


def tables_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "tables"


def metrics_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "metrics"


def predictions_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "predictions"


def executed_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "executed"


def work_dir(profile: str | None = None) -> Path:
    """Intermediate files of one profile: data, faces, LNPs, checkpoints (``work/<profile>``)."""
    return _env_path("DFIG_WORK", root() / "work") / (profile or current_profile())


def checkpoints_dir(profile: str | None = None) -> Path:
    return work_dir(profile) / "checkpoints"


def weights_dir() -> Path:
    """Folder holding the official checkpoints (``pretrained/``; override with ``DFIG_WEIGHTS``)."""
    return _env_path("DFIG_WEIGHTS", root() / "pretrained")


def sample_data_dir() -> Path:
    """The real face sample (FFHQ + StyleGAN, 256 px), read in place, never copied."""
    return _env_path("DFIG_SAMPLE_DATA", root().parent / "shared" / "data" / "faces140k-sample")


def profiles_dir() -> Path:
    return root() / "profiles"


def notebooks_dir() -> Path:
    return root() / "notebooks"


def paper_dir() -> Path:
    return root() / "paper"


def paper_pdf() -> Path:
    """The published paper at the top level (rebuilt by the sample and paper profiles)."""
    return root() / "DFIG_v2.pdf"


def rel(p: str | os.PathLike[str]) -> str:
    """``p`` relative to the project root when it lies inside it, else absolute (for logs, manifests)."""
    q = Path(p).resolve()
    try:
        return str(q.relative_to(root()))
    except ValueError:
        return str(q)
