"""Shared pytest fixtures."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from dfig import paths


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real face sample (read in place); skips the test cleanly when the folder is absent."""
    d = paths.sample_data_dir()
    if not (d / "train").is_dir():
        pytest.skip(f"face sample not found at {d} (set DFIG_SAMPLE_DATA); skipped")
    return d


@pytest.fixture(autouse=True)
def _isolated_reports(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write into the real reports/ or work/ folders."""
    base = tmp_path_factory.mktemp("dfig_out")
    monkeypatch.setenv("DFIG_REPORTS", str(base / "reports"))
    monkeypatch.setenv("DFIG_WORK", str(base / "work"))


@pytest.fixture(scope="module")
def run_all() -> ModuleType:
    """The ``run_all.py`` driver, imported from the repository root (a fresh module per test module)."""
    spec = importlib.util.spec_from_file_location("run_all", paths.root() / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
