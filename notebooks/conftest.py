"""``pytest --nbval-lax notebooks``: the notebooks' kernels write under a temporary folder.

Without this, an nbval run (profile ``smoke``, the notebooks' defaults) would overwrite
``reports/smoke`` and ``work/smoke`` made by ``make reproduce``. ``DFIG_REPORTS``/``DFIG_WORK`` (see
:mod:`dfig.paths`) set by the caller (``make nbval`` sets them) are kept.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Point DFIG_REPORTS/DFIG_WORK at a fresh temporary folder unless the caller chose them."""
    if os.environ.get("DFIG_REPORTS") or os.environ.get("DFIG_WORK"):
        return
    base = tempfile.mkdtemp(prefix="dfig-nbval-")
    os.environ["DFIG_REPORTS"] = os.path.join(base, "reports")
    os.environ["DFIG_WORK"] = os.path.join(base, "work")
    print(f"nbval: notebooks write under {base}")
