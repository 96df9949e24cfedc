"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

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
