"""dfig.stages.lnp: compat arithmetic, save modes, resumable/atomic extraction, shards, bad files, CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfig.core import denoise as D
from dfig.data.images import BadImageError, load_rgb
from dfig.io import write_stage_meta
from dfig.stages import lnp as L


def make_tree(
    root: Path, n_per_class: int = 3, size: tuple[int, int] = (24, 32), seed: int = 0, split: str = "train"
) -> list[Path]:
    """Random JPEG/PNG images under root/{split}/{real,fake} (h, w = size)."""
    rng = np.random.default_rng(seed)
    out = []
    for cls in ("real", "fake"):
        d = root / split / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            p = d / f"{cls}_{i:03d}.{'jpg' if i % 2 else 'png'}"
            cv2.imwrite(str(p), img)
            out.append(p)
    return out


def random_checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": D.CycleISPDenoiser().state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("w") / "sidd_rgb.pth")


def test_compat_arithmetic_wraps_like_the_original() -> None:
    r = np.array([-0.5, 0.0, 1 / 255, 0.5 / 255, 1.5 / 255, 10 / 255, 0.5, 1.0, 2.0], np.float32)
    # img_as_ubyte: rint(255 r) (half to even) -> 0 0 1 0 2 10 128 255 255; then *255 in uint8
    want = np.array([0, 0, 255, 0, 254, 246, 128, 1, 1], np.uint8)
    got = L.compat_encode(np.stack([r, r, r], -1)[None])
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, :, 0], want)
    np.testing.assert_array_equal(
        (np.arange(256, dtype=np.uint8) * np.uint8(255)), (256 - np.arange(256)) % 256
    )


def test_compat_png_and_read_lnp_channel_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    r = rng.uniform(-0.05, 0.05, (5, 7, 3)).astype(np.float32)
    enc = L.compat_encode(r)
    data = L.compat_png_bytes(r)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), enc)
    L.lnp_to_file(r, tmp_path / "a.png", "compat")
    back = L.read_lnp(tmp_path / "a.png")
    assert back.shape == (5, 7, 3) and back.dtype == np.float32
    np.testing.assert_array_equal(back, enc[..., ::-1] / np.float32(255))  # written as BGR, read as RGB
    L.lnp_to_file(r, tmp_path / "a.npy", "clean")
    np.testing.assert_allclose(L.read_lnp(tmp_path / "a.npy"), r, atol=1e-4)
    assert np.load(tmp_path / "a.npy").dtype == np.float16


def test_compat_tree_is_byte_identical_to_reference_script(tmp_path: Path, ckpt: Path) -> None:
    files = make_tree(tmp_path / "in", n_per_class=2, size=(16, 24))
    model = D.load_cycleisp(ckpt)
    rep = L.extract_tree(
        tmp_path / "in", tmp_path / "out", model, save_mode="compat", batch_size=3, progress=False
    )
    assert rep.done == 4 and not rep.failed
    ref_model = D.load_cycleisp(ckpt)  # plain NCHW, batch 1, no_grad: as the original script ran
    for f in files:
        # the original: cv2.imread -> /255 -> denoiser -> clamp -> img_as_ubyte -> *255 -> cv2.imwrite
        img = cv2.imread(str(f))
        x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            r = ref_model.residual(x)
        r = torch.clamp(r, 0, 1)[0].permute(1, 2, 0).numpy()
        u8 = np.clip(np.rint(np.multiply(r, 255, dtype=np.float32)), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".png", u8 * 255)
        out = tmp_path / "out" / f.relative_to(tmp_path / "in").with_suffix(".png")
        assert out.read_bytes() == buf.tobytes(), out


def test_clean_mode_signed_rgb(tmp_path: Path, ckpt: Path) -> None:
    files = make_tree(tmp_path / "in", n_per_class=1, size=(20, 28))
    model = D.load_cycleisp(ckpt)
    L.extract_tree(tmp_path / "in", tmp_path / "out", model, save_mode="clean", progress=False)
    for f in files:
        out = tmp_path / "out" / f.relative_to(tmp_path / "in").with_suffix(".npy")
        arr = np.load(out)
        assert arr.dtype == np.float16 and arr.shape == (20, 28, 3)
        x = torch.from_numpy(np.asarray(load_rgb(f), np.float32) / 255).permute(2, 0, 1)[None]
        with torch.inference_mode():
            want = model.residual(x)[0].permute(1, 2, 0).numpy()
        assert (want < 0).any()  # signed: nothing clamped away
        np.testing.assert_allclose(L.read_lnp(out), want, atol=2e-3, rtol=2e-3)
    meta = json.loads((tmp_path / "out" / "dfig_stage.json").read_text())
    assert meta["save_mode"] == "clean" and meta["channel_order_into_denoiser"] == "RGB"


def test_bad_files_mixed_sizes_and_stage_meta(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    make_tree(inp, n_per_class=2, size=(24, 32))
    make_tree(inp, n_per_class=1, size=(18, 30), seed=3, split="val")
    (inp / "train" / "fake" / "broken.jpg").write_bytes(b"not an image")
    (inp / "train" / "real" / "empty.png").write_bytes(b"")
    write_stage_meta(inp, {"stage": "segment", "method": "prior"})
    den, rec = D.build_denoiser("classical")
    rep = L.extract_tree(
        inp, tmp_path / "out", den, save_mode="compat", batch_size=8, progress=False, record=rec
    )
    assert rep.done == 6
    assert sorted(Path(p).name for p, _ in rep.failed) == ["broken.jpg", "empty.png"]
    assert all(reason for _, reason in rep.failed)
    assert L.read_lnp(tmp_path / "out" / "val" / "real" / "real_000.png").shape == (18, 30, 3)
    meta = json.loads((tmp_path / "out" / "dfig_stage.json").read_text())
    assert meta["input"] == {"stage": "segment", "method": "prior"}
    assert meta["method"] == "classical" and meta["denoiser"] == rec and meta["complete"] is True
    assert meta["counts"]["done"] == 6 and meta["counts"]["failed"] == 2
    with pytest.raises(BadImageError, match="broken.jpg"):
        L.extract_tree(inp, tmp_path / "out2", den, policy="strict", progress=False)
    with pytest.raises(ValueError, match="inside the input"):
        L.extract_tree(inp, inp / "lnp", den, progress=False)
    assert not (inp / "lnp").exists()
    with pytest.raises(ValueError, match="another stage"):  # never overwrite another stage's tree
        L.extract_tree(tmp_path / "out", inp, den, progress=False)
    # two inputs mapping to one output: the second is reported, not silently overwritten
    cv2.imwrite(str(inp / "val" / "real" / "real_000.jpg"), np.zeros((18, 30, 3), np.uint8))
    rep = L.extract_tree(inp, tmp_path / "out3", den, progress=False)
    assert [Path(p).name for p, r in rep.failed if "maps to" in r] == ["real_000.png"]


def test_shards_cover_all_without_overlap(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "in", n_per_class=5, size=(16, 16))
    den = D.ClassicalDenoiser("bilateral")
    seen: list[set[str]] = []
    for k in range(3):
        before = {p.name for p in (tmp_path / "out").rglob("*.png")} if (tmp_path / "out").exists() else set()
        rep = L.extract_tree(tmp_path / "in", tmp_path / "out", den, shard=f"{k}/3", progress=False)
        after = {p.name for p in (tmp_path / "out").rglob("*.png")}
        assert rep.skipped_existing == 0 and rep.done == len(after - before)
        seen.append(after - before)
        assert (
            json.loads((tmp_path / "out" / ".dfig_shards" / f"lnp_{k}_of_3.json").read_text())["counts"][
                "done"
            ]
            == rep.done
        )
    assert sum(len(s) for s in seen) == len(files) == 10
    assert set().union(*seen) == {f.with_suffix(".png").name for f in files}
    rep = L.extract_tree(tmp_path / "in", tmp_path / "out", den, progress=False)
    assert rep.done == 0 and rep.skipped_existing == 10
    # resuming with another denoiser would mix methods in one tree: refused
    with pytest.raises(ValueError, match="made differently"):
        L.extract_tree(tmp_path / "in", tmp_path / "out", D.ClassicalDenoiser("nlm"), progress=False)


class _Recorder:
    """A stand-in denoiser: zero residual, remembers each batch shape."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.zeros_like(x)


def test_batches_same_size_and_pixel_budget(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", n_per_class=3, size=(16, 16))
    make_tree(tmp_path / "in", n_per_class=1, size=(8, 12), seed=5, split="val")
    rec = _Recorder()
    rep = L.extract_tree(
        tmp_path / "in", tmp_path / "out", rec, batch_size=4, progress=False, max_batch_pixels=3 * 16 * 16
    )
    assert rep.done == 8
    assert sorted(rec.shapes) == sorted([(3, 3, 16, 16), (3, 3, 16, 16), (2, 3, 8, 12)])
    assert np.all(L.read_lnp(tmp_path / "out" / "train" / "real" / "real_000.png") == 0)
    assert json.loads((tmp_path / "out" / "dfig_stage.json").read_text())["method"] == "_Recorder"


def test_allocator_setting_is_reversible() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert L.tune_cpu_allocator(True) is True
    assert L.tune_cpu_allocator(False) is True


def test_cli_classical(tmp_path: Path) -> None:
    make_tree(tmp_path / "in", n_per_class=2)
    env = {**os.environ, "DFIG_WEIGHTS": str(tmp_path / "none"), "DFIG_ALLOW_FALLBACKS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "dfig.stages.lnp",
        "--input_dir",
        str(tmp_path / "in"),
        "--output_dir",
        str(tmp_path / "out"),
        "--save_mode",
        "clean",
        "--no_progress",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "FALLBACK" in out.stdout and "wrote 4, skipped 0" in out.stdout
    assert len(list((tmp_path / "out").rglob("*.npy"))) == 4
    out = subprocess.run(
        cmd, capture_output=True, text=True, env={**env, "DFIG_ALLOW_FALLBACKS": "0"}, timeout=120
    )
    assert out.returncode != 0 and "sidd_rgb.pth" in out.stderr


def test_kill_midway_then_resume(tmp_path: Path) -> None:
    """SIGKILL during extraction leaves only complete outputs; a rerun does only the rest."""
    size = (384, 384)  # non-local means: ~0.1 s per image, so the kill lands midway
    files = make_tree(tmp_path / "in", n_per_class=20, size=size)
    out_dir = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "dfig.stages.lnp",
        "--input_dir",
        str(tmp_path / "in"),
        "--output_dir",
        str(out_dir),
        "--denoiser",
        "classical",
        "--batch_size",
        "2",
        "--no_progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out_dir.rglob("*.png"))) >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    done = sorted(out_dir.rglob("*.png"))
    assert 4 <= len(done) < len(files)
    for p in done:  # every visible output is complete
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (*size, 3), p
    parts = list(out_dir.rglob("*.part"))
    assert all(p.name.startswith(".") for p in parts)  # leftovers are hidden temp files
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    m = re.search(r"wrote (\d+), skipped (\d+) already done, failed (\d+)", res.stdout)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (len(files) - len(done), len(done), 0)
    assert len(list(out_dir.rglob("*.png"))) == len(files)
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == s for p, s in stamps.items())  # not redone
    assert not list(out_dir.rglob("*.part"))  # an orphan of the killed write is removed by the rerun
    assert json.loads((out_dir / "dfig_stage.json").read_text())["counts"]["removed_part_files"] == len(parts)
    assert (f"removed {len(parts)} unfinished" in res.stdout) == bool(parts)
    assert json.loads((out_dir / "dfig_stage.json").read_text())["complete"] is True


def test_classical_strength_recorded_and_never_mixed(tmp_path: Path) -> None:
    """``classical_h`` goes into the stage record; a folder made with one strength refuses another."""
    from dfig.io import read_stage_meta

    make_tree(tmp_path / "in", n_per_class=1)
    L.extract_tree(tmp_path / "in", tmp_path / "out", "classical", classical_h=20, progress=False)
    meta = read_stage_meta(tmp_path / "out")
    assert meta["denoiser"]["classical"]["h"] == 20.0 and meta["classical_h"] == 20.0
    assert L.lnp_signature(meta)["classical"]["h"] == 20.0
    with pytest.raises(ValueError, match=r"made differently \(classical: .*'h': 20\.0.*'h': 5\.0"):
        L.extract_tree(tmp_path / "in", tmp_path / "out", "classical", progress=False)
    L.extract_tree(tmp_path / "in", tmp_path / "out", "classical", classical_h=20.0, progress=False)  # resume
    L.extract_tree(tmp_path / "in", tmp_path / "out", "classical", progress=False, overwrite=True)
    assert read_stage_meta(tmp_path / "out")["classical_h"] == D.CLASSICAL_H


def test_cli_classical_h(tmp_path: Path) -> None:
    """``--classical_h`` is recorded; a bad strength is one line on stderr, exit 2."""
    from dfig.io import read_stage_meta

    make_tree(tmp_path / "in", n_per_class=1)
    args = ["--input_dir", str(tmp_path / "in"), "--denoiser", "classical", "--no_progress"]
    assert L.main([*args, "--output_dir", str(tmp_path / "out"), "--classical_h", "12.5"]) == 0
    assert read_stage_meta(tmp_path / "out")["denoiser"]["classical"]["h"] == 12.5
    cmd = [
        sys.executable,
        "-m",
        "dfig.lnp",
        *args,
        "--output_dir",
        str(tmp_path / "o2"),
        "--classical_h",
        "0",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and "h must be > 0" in res.stderr
