"""Issue 10, data and extraction stages: nothing mislabelled, nothing mixed, nothing overwritten.

Symlinks keep the label and output path of where they sit; a stage folder holds one feature kind
(refused unless ``overwrite``); every LNP mode rejects truncated files; orphan ``.part`` files of a
killed run are removed on rerun; stage records merge failures and collisions across shards and reruns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfig.data.images import BadImageError, load_rgb
from dfig.data.layout import discover, list_images, mirror_path
from dfig.io import atomic_path, read_stage_meta
from dfig.stages import lnp as L
from dfig.stages import segment as S
from dfig.tree import plan_tree


class _Zero:
    """A stand-in denoiser: zero residual (fast)."""

    source = {"method": "zero"}

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _img(path: Path, seed: int = 0, size: tuple[int, int] = (16, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def _tree(root: Path, n: int = 2, splits: tuple[str, ...] = ("train", "test")) -> Path:
    for s, split in enumerate(splits):
        for c, cls in enumerate(("real", "fake")):
            for i in range(n):
                _img(root / split / cls / f"{cls}_{i}.png", seed=100 * s + 10 * c + i)
    return root


def _truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = buf.tobytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _files(root: Path, suffix: str) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(f"*{suffix}") if p.is_file())


def _failed(meta: dict) -> dict[str, str]:
    return {Path(f["path"]).name: f["reason"] for f in meta["counts"]["failed_files"]}


# ---------------------------------------------------------------------------------------------
# 1. symlinks: label and output path from where the link sits, bad links are named skips


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    raw = _tree(tmp_path / "raw")
    fake = raw / "train" / "fake"
    (fake / "leak.png").symlink_to(raw / "test" / "real" / "real_0.png")  # points into another split/class
    outside = _img(tmp_path / "elsewhere" / "outside.png", seed=99)
    (fake / "outside.png").symlink_to(outside)  # target outside the tree
    (fake / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (fake / "loop_a.png").symlink_to(fake / "loop_b.png")
    (fake / "loop_b.png").symlink_to(fake / "loop_a.png")
    (fake / "dirloop").symlink_to(fake, target_is_directory=True)  # a folder link that contains itself
    return raw


def test_mirror_path_and_labels_follow_the_link_location(linked_tree: Path, tmp_path: Path) -> None:
    link = linked_tree / "train" / "fake" / "leak.png"
    assert mirror_path(link, linked_tree, tmp_path / "out", ".npy") == tmp_path / "out/train/fake/leak.npy"
    out = linked_tree / "train" / "fake" / "outside.png"
    assert mirror_path(out, linked_tree, tmp_path / "o") == tmp_path / "o/train/fake/outside.png"
    train = {s.path.name: s for s in discover(linked_tree, splits=("train",))["train"]}
    assert train["leak.png"].label == 1 and train["leak.png"].cls == "fake"
    assert train["leak.png"].path == link  # the link itself, not its target
    names = [p.name for p in list_images(linked_tree / "train" / "fake")]
    assert names.count("leak.png") == 1 and "dangling.png" in names and "loop_a.png" in names


def test_lnp_tree_with_links(linked_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "lnp"
    rep = L.extract_tree(linked_tree, out, _Zero(), progress=False)
    got = _files(out, ".png")
    assert "train/fake/leak.png" in got and "train/fake/outside.png" in got
    assert got.count("test/real/real_0.png") == 1  # the link did not (over)write the test file
    reasons = {Path(p).name: r for p, r in rep.failed}
    assert set(reasons) == {"dangling.png", "loop_a.png", "loop_b.png", "dirloop"}
    assert "dangling" in reasons["dangling.png"] and "loop" in reasons["loop_a.png"]
    assert "loop" in reasons["dirloop"]
    assert set(_failed(read_stage_meta(out))) == set(reasons)
    with pytest.raises(BadImageError, match="dangling link"):
        L.extract_tree(linked_tree, tmp_path / "strict", _Zero(), policy="strict", progress=False)


def test_segment_tree_with_links(linked_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "faces"
    rep = S.segment_tree(linked_tree, out, S.WholeImageSegmenter(), progress=False)
    got = _files(out, ".png")
    assert "train/fake/leak.png" in got and "train/fake/outside.png" in got
    assert rep.done == 10 and {Path(p).name for p, _ in rep.failed} == {
        "dangling.png",
        "loop_a.png",
        "loop_b.png",
        "dirloop",
    }
    face = cv2.imread(str(out / "train/fake/leak.png"))
    assert np.array_equal(
        face, cv2.imread(str(linked_tree / "test/real/real_0.png"))
    )  # content of the target


@pytest.mark.parametrize("kind", ["lnp", "segment"])
def test_link_into_the_output_tree_is_not_read(tmp_path: Path, kind: str) -> None:
    """A folder link inside the input that reaches the output (or mask) tree: never read back as input."""
    raw = _tree(tmp_path / "raw", n=1)
    out, masks = tmp_path / "out", tmp_path / "masks"
    (raw / "train" / "fake" / "outlink").symlink_to(out, target_is_directory=True)
    (raw / "train" / "real" / "masklink").symlink_to(masks, target_is_directory=True)
    for _ in range(2):
        if kind == "lnp":
            rep = L.extract_tree(raw, out, _Zero(), progress=False)
        else:
            rep = S.segment_tree(raw, out, S.WholeImageSegmenter(), mask_dir=masks, progress=False)
    assert len(_files(out, ".png")) == 4  # a second run did not take its own outputs as new inputs
    assert all("output" in r for _, r in rep.failed) and rep.failed


def test_link_reasons_in_load_rgb(linked_tree: Path) -> None:
    fake = linked_tree / "train" / "fake"
    for name, word in (("dangling.png", "dangling link"), ("loop_a.png", "loop"), ("dirloop", "loop")):
        with pytest.raises(BadImageError) as ei:
            load_rgb(fake / name)
        assert word in ei.value.reason and str(fake / name) in str(ei.value)
    assert load_rgb(fake / "leak.png").size == (20, 16)
    (fake / "gone.npy").symlink_to(fake / "missing.npy")
    with pytest.raises(BadImageError) as ei:  # the LNP reader (spectra, plots) says the same
        L.read_lnp(fake / "gone.npy")
    assert "dangling link" in ei.value.reason


# ---------------------------------------------------------------------------------------------
# 2. one feature kind per stage folder; overwrite clears our outputs first


def test_lnp_refuses_other_save_mode_then_overwrite(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw")
    out = tmp_path / "lnp"
    L.extract_tree(raw, out, _Zero(), save_mode="compat", progress=False)
    before = read_stage_meta(out)
    with pytest.raises(ValueError, match=r"compat") as ei:
        L.extract_tree(raw, out, _Zero(), save_mode="clean", progress=False)
    assert str(out) in str(ei.value) and "overwrite" in str(ei.value)
    assert not _files(out, ".npy") and read_stage_meta(out) == before
    rep = L.extract_tree(raw, out, _Zero(), save_mode="clean", overwrite=True, progress=False)
    assert rep.done == 8 and not _files(out, ".png") and len(_files(out, ".npy")) == 8
    assert read_stage_meta(out)["save_mode"] == "clean"


def test_lnp_refuses_other_denoiser_params(tmp_path: Path) -> None:
    from dfig.core.denoise import ClassicalDenoiser

    raw = _tree(tmp_path / "raw", n=1)
    out = tmp_path / "lnp"
    L.extract_tree(raw, out, ClassicalDenoiser("bilateral"), save_mode="clean", progress=False)
    with pytest.raises(ValueError, match="made differently"):  # other denoiser AND other mode
        L.extract_tree(raw, out, ClassicalDenoiser("nlm"), save_mode="compat", progress=False)
    with pytest.raises(ValueError, match="made differently"):  # same method, other parameter
        L.extract_tree(raw, out, ClassicalDenoiser("bilateral", h=9), save_mode="clean", progress=False)


def test_overwrite_never_clears_another_stage(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw", n=1)
    faces = tmp_path / "faces"
    S.segment_tree(raw, faces, S.WholeImageSegmenter(), progress=False)
    with pytest.raises(ValueError, match="another stage"):
        L.extract_tree(raw, faces, _Zero(), overwrite=True, progress=False)
    lnp = tmp_path / "lnp"
    L.extract_tree(raw, lnp, _Zero(), progress=False)
    with pytest.raises(ValueError, match="another stage"):
        S.segment_tree(raw, lnp, S.WholeImageSegmenter(), overwrite=True, progress=False)
    assert len(_files(faces, ".png")) == 4 and len(_files(lnp, ".png")) == 4
    mine = _img(tmp_path / "photos" / "keep.png")  # images, but no dfig record: not ours to delete
    with pytest.raises(ValueError, match="did not make them"):
        L.extract_tree(raw, mine.parent, _Zero(), overwrite=True, progress=False)
    with pytest.raises(ValueError, match="did not make them"):
        S.segment_tree(raw, mine.parent, S.WholeImageSegmenter(), overwrite=True, progress=False)
    assert mine.exists() and not (mine.parent / "train").exists()


def test_overwrite_with_shards_refused(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw", n=1)
    with pytest.raises(ValueError, match="shard"):
        L.extract_tree(raw, tmp_path / "lnp", _Zero(), shard="0/2", overwrite=True, progress=False)
    with pytest.raises(ValueError, match="shard"):
        S.segment_tree(
            raw, tmp_path / "faces", S.WholeImageSegmenter(), shard=(0, 2), overwrite=True, progress=False
        )


def test_segment_refuses_other_segmenter_then_overwrite(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw")
    out = tmp_path / "work" / "faces"
    S.segment_tree(raw, out, S.WholeImageSegmenter(), progress=False)
    with pytest.raises(ValueError, match="mix methods") as ei:
        S.segment_tree(raw, out, S.PriorSegmenter(), progress=False)
    assert "overwrite" in str(ei.value)
    with pytest.raises(ValueError, match="mix methods"):
        S.segment_tree(raw, out, S.WholeImageSegmenter(), face_format="jpg", progress=False)
    masks = tmp_path / "work" / "masks"
    (masks / "train" / "real" / "real_0.png").unlink()  # one to redo, the rest from the old segmenter
    rep = S.segment_tree(raw, out, S.PriorSegmenter(), face_format="jpg", overwrite=True, progress=False)
    assert rep.done == 8 and rep.skipped_existing == 0
    assert not _files(out, ".png") and len(_files(out, ".jpg")) == 8
    assert len(_files(masks, ".png")) == 8
    assert {r.split(",")[3] for r in (out / S.CSV_NAME).read_text().splitlines()[1:]} == {"prior"}
    m = cv2.imread(str(masks / "train/real/real_1.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(m == 255, S.prior_mask(16, 20))  # redone, not the whole-image mask


def _cli(mod: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DFIG_ALLOW_FALLBACKS": "1"}
    return subprocess.run(
        [sys.executable, "-m", mod, *args, "--no_progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_refusal_is_one_line_exit_2_and_overwrite_flag(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw", n=1)
    io = ["--input_dir", str(raw), "--output_dir", str(tmp_path / "lnp"), "--denoiser", "classical"]
    assert _cli("dfig.stages.lnp", *io).returncode == 0
    res = _cli("dfig.stages.lnp", *io, "--save_mode", "clean")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    err = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "compat" in err[0] and "--overwrite" in err[0]
    res = _cli("dfig.stages.lnp", *io, "--save_mode", "clean", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert len(_files(tmp_path / "lnp", ".npy")) == 4 and not _files(tmp_path / "lnp", ".png")
    sio = ["--input_dir", str(raw), "--output_dir", str(tmp_path / "faces")]
    assert _cli("dfig.stages.segment", *sio, "--segmenter", "none").returncode == 0
    res = _cli("dfig.stages.segment", *sio, "--segmenter", "prior")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--overwrite" in res.stderr
    assert _cli("dfig.stages.segment", *sio, "--segmenter", "prior", "--overwrite").returncode == 0
    assert read_stage_meta(tmp_path / "faces")["segmenter"]["name"] == "prior"


# ---------------------------------------------------------------------------------------------
# 4. truncated files: rejected in every mode, as in segmentation


def test_truncated_jpeg_rejected_in_every_mode(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw", n=1)
    bad = _truncated_jpeg(raw / "train" / "fake" / "cut.jpg")
    assert cv2.imread(str(bad)) is not None  # OpenCV alone would fill the missing part with grey
    for mode in L.SAVE_MODES:
        rep = L.extract_tree(raw, tmp_path / mode, _Zero(), save_mode=mode, progress=False)
        assert [Path(p).name for p, _ in rep.failed] == ["cut.jpg"], mode
        assert not (tmp_path / mode / "train/fake/cut").with_suffix(L.SUFFIX[mode]).exists()
        with pytest.raises(BadImageError, match="cut.jpg"):
            L.extract_tree(
                raw, tmp_path / f"{mode}_strict", _Zero(), save_mode=mode, policy="strict", progress=False
            )
        with pytest.raises(BadImageError, match="cut.jpg"):
            L.read_input(bad, mode)
    rep = S.segment_tree(raw, tmp_path / "faces", S.WholeImageSegmenter(), progress=False)
    assert [Path(p).name for p, _ in rep.failed] == ["cut.jpg"]
    res = _cli(
        "dfig.stages.lnp",
        "--input_dir",
        str(raw),
        "--output_dir",
        str(tmp_path / "cli"),
        "--denoiser",
        "classical",
        "--policy",
        "strict",
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert [x for x in res.stderr.splitlines() if x.startswith("error:")][0].count("cut.jpg") == 1


# ---------------------------------------------------------------------------------------------
# 8. orphan .part files (kill -9 during an atomic write) are removed on rerun, and counted

_OPEN: list = []  # contexts never exited (kept alive so that no finaliser cleans up after them)


def _orphan(dest: Path) -> Path:
    """A temp file exactly as dfig.io names it, left behind as by kill -9 in the middle of a write."""
    cm = atomic_path(dest)
    tmp = cm.__enter__()
    tmp.write_bytes(b"half")
    _OPEN.append(cm)
    return tmp


def test_orphan_parts_removed_lnp(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw")
    out = tmp_path / "lnp"
    L.extract_tree(raw, out, _Zero(), progress=False)
    orphans = [
        _orphan(out / "train/real/real_0.png"),
        _orphan(out / "test/fake/fake_9.png"),
        _orphan(out / "dfig_stage.json"),
    ]
    assert all(p.exists() and p.name.endswith(".part") for p in orphans)
    foreign = [out / "notes.part", out / "train" / ".hidden.part"]
    for p in foreign:
        p.write_text("not ours")
    rep = L.extract_tree(raw, out, _Zero(), progress=False)
    assert rep.removed_part_files == 3 and not any(p.exists() for p in orphans)
    assert all(p.exists() for p in foreign)  # not named as dfig names its temp files: kept
    assert "removed 3" in rep.summary()
    assert read_stage_meta(out)["counts"]["removed_part_files"] == 3


def test_orphan_parts_removed_segment_faces_and_masks(tmp_path: Path) -> None:
    raw = _tree(tmp_path / "raw")
    out = tmp_path / "w" / "faces"
    S.segment_tree(raw, out, S.WholeImageSegmenter(), progress=False)
    orphans = [
        _orphan(out / "train/real/real_0.png"),
        _orphan(tmp_path / "w/masks/train/real/real_0.png"),
        _orphan(out / S.CSV_NAME),
    ]
    rep = S.segment_tree(raw, out, S.WholeImageSegmenter(), progress=False)
    assert rep.removed_part_files == 3 and not any(p.exists() for p in orphans)
    assert "removed 3" in rep.summary()
    assert read_stage_meta(out)["counts"]["removed_part_files"] == 3


def test_sharded_rerun_removes_only_its_own_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _tree(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    out = Path("lnp")  # a relative output folder: plan paths are resolved, the walk must match them
    L.extract_tree(raw, out, _Zero(), progress=False)
    plan0 = plan_tree(raw, out, ".png", shard=(0, 2), overwrite=True)
    plan1 = plan_tree(raw, out, ".png", shard=(1, 2), overwrite=True)
    mine, theirs = _orphan(plan0.todo[0][1]), _orphan(plan1.todo[0][1])  # theirs: maybe being written now
    rep = L.extract_tree(raw, out, _Zero(), shard="0/2", progress=False)
    assert rep.removed_part_files == 1 and not mine.exists() and theirs.exists()


# ---------------------------------------------------------------------------------------------
# 9. stage records merge failures and collisions across shards and reruns


def _bad_tree(root: Path) -> Path:
    _tree(root, n=3, splits=("train",))
    for name in ("a_bad.png", "b_bad.png", "c_bad.png", "d_bad.png"):
        (root / "train" / "fake" / name).write_bytes(b"not an image")
    _img(root / "train" / "real" / "twin.jpg", seed=5)  # twin.jpg and twin.png -> one output name
    _img(root / "train" / "real" / "twin.png", seed=6)
    return root


def _run(kind: str, raw: Path, out: Path, shard: str = "0/1"):
    if kind == "lnp":
        return L.extract_tree(raw, out, _Zero(), shard=shard, progress=False)
    k, n = (int(x) for x in shard.split("/"))
    return S.segment_tree(raw, out, S.WholeImageSegmenter(), shard=(k, n), progress=False)


@pytest.mark.parametrize("kind", ["lnp", "segment"])
def test_records_merge_across_shards_and_reruns(tmp_path: Path, kind: str) -> None:
    raw = _bad_tree(tmp_path / "raw")
    out = tmp_path / "out"
    reps = [_run(kind, raw, out, f"{k}/2") for k in range(2)]
    names = set().union(*({Path(p).name for p, _ in r.failed} for r in reps))
    assert names == {"a_bad.png", "b_bad.png", "c_bad.png", "d_bad.png", "twin.png"}
    assert all(r.failed for r in reps)  # both shards met bad files
    failed = _failed(read_stage_meta(out))
    assert set(failed) == names and "twin.png" in failed and "maps to" in failed["twin.png"]
    assert read_stage_meta(out)["counts"]["failed"] == 5
    twin = out / "train" / "real" / "twin.png"
    assert cv2.imread(str(twin)) is not None
    stamp = twin.stat().st_mtime_ns

    # rerun: the collision is still reported and recorded, the existing output left alone
    rep = _run(kind, raw, out)
    assert "twin.png" in {Path(p).name for p, _ in rep.failed} and twin.stat().st_mtime_ns == stamp
    assert set(_failed(read_stage_meta(out))) == names
    # a fixed file leaves the failure list; a removed one too; counts recomputed
    _img(raw / "train" / "fake" / "a_bad.png", seed=11)
    (raw / "train" / "fake" / "b_bad.png").unlink()
    rep = _run(kind, raw, out, "0/2")
    _run(kind, raw, out, "1/2")
    meta = read_stage_meta(out)
    assert set(_failed(meta)) == {"c_bad.png", "d_bad.png", "twin.png"} and meta["counts"]["failed"] == 3
    assert (out / "train/fake/a_bad.png").exists()


@pytest.mark.parametrize("kind", ["lnp", "segment"])
def test_collision_across_shards_written_once(tmp_path: Path, kind: str) -> None:
    raw = tmp_path / "raw"
    _img(raw / "train" / "real" / "x.jpg", seed=1)
    _img(raw / "train" / "real" / "x.png", seed=2)  # sorted: x.jpg (shard 0), x.png (shard 1)
    _img(raw / "train" / "fake" / "y.png", seed=3)
    r0, r1 = _run(kind, raw, tmp_path / "out", "0/2"), _run(kind, raw, tmp_path / "out", "1/2")
    assert [Path(p).name for p, _ in r0.failed + r1.failed] == ["x.png"]
    assert r0.done + r1.done == 2
    if kind == "segment":
        got = cv2.imread(str(tmp_path / "out/train/real/x.png"))
        assert np.array_equal(got, np.asarray(load_rgb(raw / "train/real/x.jpg"))[..., ::-1])


def test_record_valid_after_shards_in_any_order(tmp_path: Path) -> None:
    raw = _bad_tree(tmp_path / "raw")
    out = tmp_path / "out"
    for k in (1, 0, 1):
        _run("lnp", raw, out, f"{k}/2")
    meta = json.loads((out / "dfig_stage.json").read_text())
    assert meta["counts"]["failed"] == 5 and meta["stage"] == "lnp"


def test_both_stages_share_one_record_schema_and_folder_check(tmp_path: Path) -> None:
    """segment_tree and extract_tree go through dfig.tree's runner: same record keys, same refusals."""
    from dfig.tree import check_output_folder

    raw = _tree(tmp_path / "raw", n=1)
    seg, rec = S.build_segmenter("none", allow_fallback=True)
    S.segment_tree(raw, tmp_path / "faces", seg, record=rec, progress=False)
    L.extract_tree(tmp_path / "faces", tmp_path / "lnp", "classical", save_mode="clean", progress=False)
    common = {"stage", "dfig_version", "input_dir", "input", "complete", "counts"}
    metas = [read_stage_meta(tmp_path / d) for d in ("faces", "lnp")]
    for meta in metas:
        assert common <= set(meta) and meta["complete"] is True
        assert {"inputs", "outputs", "failed", "failed_files", "removed_part_files"} <= set(meta["counts"])
    assert metas[1]["input"]["stage"] == "segmentation"  # the chain of records
    for kind, folder, meta in ((S.FACES_KIND, "faces", metas[0]), (L.LNP_KIND, "lnp", metas[1])):
        assert check_output_folder(tmp_path / folder, kind, meta, False, 1) is None  # same kind: resume
        other = {**meta, "face_format": "jpg", "save_mode": "compat"}
        with pytest.raises(ValueError, match="made differently .*mix methods.*--overwrite"):
            check_output_folder(tmp_path / folder, kind, other, False, 1)
        with pytest.raises(ValueError, match="another stage"):
            check_output_folder(tmp_path / ("lnp" if folder == "faces" else "faces"), kind, meta, False, 1)
