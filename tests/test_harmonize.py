"""dfig.data.harmonize: both classes end with one history (size, format, JPEG tables, subsampling, no
EXIF), the record says so, the input is untouched, a rerun resumes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from dfig.data import harmonize as hz
from dfig.io import read_stage_meta

SIZE = 48


def _noise(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """real: RGBA PNGs of 80x60; fake: 4:4:4 JPEGs of q95 with EXIF and an ICC profile, 128x128."""
    root = tmp_path / "src"
    for split in ("test", "val"):
        (root / split / "real").mkdir(parents=True)
        (root / split / "fake").mkdir(parents=True)
        for i in range(3):
            _noise(60, 80, i).convert("RGBA").save(root / split / "real" / f"r{i}.png")
            exif = Image.Exif()
            exif[0x010F] = "SomeCamera"
            _noise(128, 128, 10 + i).save(
                root / split / "fake" / f"f{i}.jpg",
                quality=95,
                subsampling=0,
                exif=exif.tobytes(),
                icc_profile=b"\0" * 128,
            )
    (root / "test" / "fake" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_both_classes_end_with_one_history(src: Path, tmp_path: Path) -> None:
    before = _digest(src)
    rec = hz.harmonize_tree(src, tmp_path / "out", size=SIZE, jpeg_quality=70, progress=False)
    assert _digest(src) == before  # the input is never written
    outs = sorted((tmp_path / "out").rglob("*.jpg"))
    assert len(outs) == 12 and {p.parent.name for p in outs} == {"real", "fake"}
    tables, seen = None, set()
    for p in outs:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (SIZE, SIZE) and im.mode == "RGB"
            assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
            assert "exif" not in im.info and "icc_profile" not in im.info
            q = {k: list(v) for k, v in im.quantization.items()}
            tables = tables or q
            assert q == tables
        seen.add(p.parent.name)
    assert seen == {"real", "fake"}
    r = read_stage_meta(tmp_path / "out")
    assert r["stage"] == "harmonize" and r["complete"] is True
    assert (r["size"], r["jpeg_quality"], r["filter"], r["subsampling"]) == (SIZE, 70, "bicubic", "4:2:0")
    assert r["counts"]["done"] == 12 and r["counts"]["failed"] == 1
    assert r["counts"]["failed_files"][0]["path"].endswith("broken.jpg")
    assert r["source_summary"]["real"]["formats"] == {"PNG": 6} and r["source_summary"]["real"]["sizes"] == {
        "80x60": 6
    }
    assert r["source_summary"]["fake"]["formats"] == {"JPEG": 6, "unreadable": 1}
    assert r["source_summary"]["fake"]["jpeg_subsampling"] == {"4:4:4": 6}
    assert r["resized"] == {"fake": 6, "real": 6}
    assert rec["report"].done == 12
    assert hz.harmonize_note(tmp_path / "out") == "harmonised: 48 px, JPEG q70 4:2:0, bicubic"
    assert hz.harmonize_note(src) == ""


def test_rerun_resumes_and_refuses_other_settings(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    hz.harmonize_tree(src, out, size=SIZE, progress=False)
    first = sorted(out.rglob("*.jpg"))
    (first[0]).unlink()
    stamps = {p: p.stat().st_mtime_ns for p in first[1:]}
    rec = hz.harmonize_tree(src, out, size=SIZE, progress=False)
    assert rec["report"].done == 1 and rec["report"].skipped_existing == 11
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert rec["counts"]["outputs"] == 12 and rec["complete"] is True
    with pytest.raises(ValueError, match="other settings.*jpeg_quality 75 not 90"):
        hz.harmonize_tree(src, out, size=SIZE, jpeg_quality=90, progress=False)


def test_refuses_output_in_input_or_foreign_folder(src: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inside the input folder"):
        hz.harmonize_tree(src, src / "h", size=SIZE, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        hz.harmonize_tree(src, foreign, size=SIZE, progress=False)


def test_resize_shorter_side_then_centre_crop() -> None:
    img = Image.new("RGB", (200, 100), (10, 20, 30))
    img.paste((200, 0, 0), (0, 0, 50, 100))  # a red band on the left quarter
    out = hz.harmonize_image(img, 50)
    assert out.size == (50, 50)
    assert np.asarray(out)[25, 0].tolist() != [
        200,
        0,
        0,
    ]  # the band (first 25 px after resize) is cropped off
    same = Image.new("RGB", (50, 70))
    assert hz.harmonize_image(same, 50).size == (50, 50)


def test_cli(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hz.main(["--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope" in err and "\n" not in err
    assert (
        hz.main(
            [
                "--input_dir",
                str(src),
                "--output_dir",
                str(tmp_path / "o"),
                "--size",
                str(SIZE),
                "--jpeg_quality",
                "80",
                "--no_progress",
            ]
        )
        == 0
    )
    assert "failed 1" in capsys.readouterr().out
    assert read_stage_meta(tmp_path / "o")["jpeg_quality"] == 80
