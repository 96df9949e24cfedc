"""Issue 22, reliability round 3: long names, extreme images, interrupted and concurrent runs, unchecked
values, strict records, named files, faceless and empty inputs, full disks and read-only folders.

Each section is one kind of the issue (numbered as there); docs/reliability.md lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dfig import io
from dfig.stages import lnp as L
from dfig.stages import segment as S

pytestmark = pytest.mark.filterwarnings("ignore::dfig.fallback.FallbackWarning")


class _Zero:
    """A stand-in denoiser: zero residual (fast)."""

    source = {"method": "zero"}

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _img(path: Path, seed: int = 0, size: tuple[int, int] = (16, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def _failed(meta: dict) -> dict[str, str]:
    return {Path(f["path"]).name: f["reason"] for f in meta["counts"]["failed_files"]}


# ---------------------------------------------------------------------------------------------
# 1. long file names: processed (the temporary name is cut to fit), or a counted, named skip


LONG = "é" * 60 + "x" * 116 + ".png"  # 240 bytes: fits, but not with atomic_path's 19 extra bytes


def test_long_names_go_through_segment_and_lnp(tmp_path: Path) -> None:
    assert len(LONG.encode()) == 240
    raw = tmp_path / "raw"
    _img(raw / "test" / "real" / LONG)
    _img(raw / "test" / "real" / "short.png", seed=1)
    faces, lnp = tmp_path / "faces", tmp_path / "lnp"
    rep = S.segment_tree(raw, faces, S.WholeImageSegmenter(), progress=False)
    assert not rep.failed and (faces / "test" / "real" / LONG).is_file()
    rep = L.extract_tree(faces, lnp, _Zero(), save_mode="clean", progress=False)
    assert not rep.failed and (lnp / "test" / "real" / (LONG[:-4] + ".npy")).is_file()
    assert not [p for p in tmp_path.rglob("*.part")]
    # an orphan temporary file of a long name (kill -9) is recognised and removed on rerun
    orphan = faces / "test" / "real" / f".{io.temp_key(faces / 'test' / 'real' / LONG).name}.abcdefgh.png.part"
    orphan.write_bytes(b"half")
    assert io.temp_target(orphan) == io.temp_key(faces / "test" / "real" / LONG)
    S.segment_tree(raw, faces, S.WholeImageSegmenter(), progress=False)
    assert not orphan.exists()


def test_an_output_name_beyond_the_limit_is_a_named_skip(tmp_path: Path, monkeypatch) -> None:
    """An output folder on a file system with shorter names (eCryptfs: 143 bytes): counted, named, no crash."""
    import dfig.tree

    monkeypatch.setattr(dfig.tree, "name_max", lambda folder: 143, raising=False)
    raw = tmp_path / "raw"
    _img(raw / "test" / "real" / LONG)
    _img(raw / "test" / "real" / "short.png", seed=1)
    rep = L.extract_tree(raw, tmp_path / "lnp", _Zero(), progress=False)
    [(path, reason)] = rep.failed
    assert path.endswith(LONG) and "longer than the file system allows (143 bytes)" in reason
    assert _failed(io.read_stage_meta(tmp_path / "lnp"))[LONG] == reason
    assert (tmp_path / "lnp" / "test" / "real" / "short.png").is_file()
