"""Issue 24: the 140k download as it arrives (``valid``, two folders deep) is valid input, ``python -m
dfig.data fetch`` downloads it (or prints the steps and exits 2), ``python -m dfig.data check`` says what
arrived (counts, image kinds, one file in two splits, a missing class) and binds the paper profile.
No test touches the network: downloads are fake downloaders writing a small archive of the same layout."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfig import io, paths
from dfig.data import check as data_check
from dfig.data import fetch as data_fetch
from dfig.data.catalog import FACES140K
from dfig.data.cli import main as data_main
from dfig.data.layout import discover, find_data_root, split_dir

KAGGLE = FACES140K.tree  # real_vs_fake/real-vs-fake
SPLIT_FOLDERS = ("train", "valid", "test")


def kaggle_tree(top: Path, n: int = 3, size: int = 256) -> Path:
    """The download's layout with ``n`` distinct JPEGs per split and class, and its CSVs; returns ``top``."""
    rng = np.random.default_rng(0)
    for split in SPLIT_FOLDERS:
        for cls in ("real", "fake"):
            d = top / KAGGLE / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                px = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(px).save(d / f"{cls}{split}{i:03d}.jpg", quality=60)
        (top / f"{split}.csv").write_text("id,label,path\n")
    return top


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def fake_archive(dest_zip: Path, n: int = 3) -> Path:
    """A small archive of the download's layout (what the Kaggle client writes), built from a tree."""
    src = kaggle_tree(dest_zip.parent / "_src", n)
    with zipfile.ZipFile(dest_zip, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
    return dest_zip


def fake_downloader(calls: list[Path]):
    def download(coll, folder: Path) -> None:
        calls.append(folder)
        fake_archive(folder.parent / "_work" / coll.archive).replace(folder / coll.archive)

    return download


# 1. the download as it arrives -------------------------------------------------------------------


def test_valid_is_the_validation_split_and_nothing_is_renamed(tmp_path: Path) -> None:
    top = kaggle_tree(tmp_path / "dl")
    before = snapshot(top)
    root, note = find_data_root(top)
    assert root == top / KAGGLE and str(root) in note
    found = discover(root)
    assert list(found) == ["train", "val", "test"]
    assert {s.split for s in found["val"]} == {"val"} and all("/valid/" in str(s.path) for s in found["val"])
    assert [len(found[s]) for s in found] == [6, 6, 6]
    assert find_data_root(root) == (root, "")  # the tree itself: used as given, nothing said
    assert snapshot(top) == before


def test_the_training_reader_accepts_valid(tmp_path: Path) -> None:
    from dfig.stages.train import split_samples

    root = kaggle_tree(tmp_path / "dl", n=2) / KAGGLE
    got = split_samples(root)
    assert {k: len(v) for k, v in got.items()} == {"train": 4, "val": 4, "test": 4}


def test_two_trees_or_val_and_valid_are_one_line_errors(tmp_path: Path) -> None:
    kaggle_tree(tmp_path / "a", n=1)
    kaggle_tree(tmp_path / "b", n=1)
    with pytest.raises(ValueError, match="2 dataset trees") as ei:
        find_data_root(tmp_path)
    assert str(tmp_path / "a" / KAGGLE) in str(ei.value) and str(tmp_path / "b" / KAGGLE) in str(ei.value)
    root = tmp_path / "a" / KAGGLE
    (root / "val" / "real").mkdir(parents=True)
    with pytest.raises(ValueError, match="both val/ and valid/"):
        split_dir(root, "val")
    with pytest.raises(FileNotFoundError, match="no dataset tree"):
        find_data_root(tmp_path / "a" / "real_vs_fake" / "real-vs-fake" / "train" / "real")


def test_run_all_data_finds_the_tree_and_says_so(run_all, tmp_path: Path, capsys) -> None:
    top = kaggle_tree(tmp_path / "dl", n=1)
    runs = run_all.expand(run_all.load_profile("smoke"), str(top), {})
    assert paths.resolve(runs[0]["parameters"]["data_root"]) == top / KAGGLE
    assert f"data: using {top / KAGGLE}" in capsys.readouterr().out
    kaggle_tree(tmp_path / "dl2", n=1)
    with pytest.raises(SystemExit, match="2 dataset trees"):
        run_all.expand(run_all.load_profile("smoke"), str(tmp_path), {})


def test_a_notebook_given_the_top_folder_reads_the_tree(tmp_path: Path) -> None:
    from dfig.notebook import RunContext

    top = kaggle_tree(tmp_path / "dl", n=1)
    ctx = RunContext("01_segmentation", "smoke", {"data_root": str(top)}, "cpu")
    assert ctx.data_root() == top / KAGGLE


# 3. the check ------------------------------------------------------------------------------------


def test_check_reports_counts_and_kinds(tmp_path: Path, capsys) -> None:
    top = kaggle_tree(tmp_path / "dl")
    before = snapshot(top)
    assert data_main(["check", str(top), "--json", str(tmp_path / "rec.json")]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "status: ok" in out and "JPEG 256x256 (3)" in out
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["counts"] == {s: {"real": 3, "fake": 3} for s in ("train", "val", "test")}
    assert rec["folders"] == {"train": "train", "val": "valid", "test": "test"} and rec["total"] == 18
    assert snapshot(top) == before  # the check writes nothing into the data


def test_check_against_the_collection_wants_its_counts_or_an_accepted_subset(tmp_path: Path, capsys) -> None:
    top = kaggle_tree(tmp_path / "dl")
    assert data_main(["check", str(top), "--expect", "faces140k"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: counts differ from faces140k: train/real 3 (expected 50,000)" in out
    assert data_main(["check", str(top), "--expect", "faces140k", "--accept-subset"]) == 0
    assert "status: subset" in capsys.readouterr().out


def test_check_catches_a_file_in_two_splits(tmp_path: Path, capsys) -> None:
    root = kaggle_tree(tmp_path / "dl") / KAGGLE
    src = root / "train" / "real" / "realtrain001.jpg"
    (root / "test" / "fake" / "copied.jpg").write_bytes(src.read_bytes())
    for extra in ([], ["--hash-all"]):
        assert data_main(["check", str(root), *extra]) == 1
        out = capsys.readouterr().out
        assert "1 file(s) present in two folders" in out
        assert "train/real/realtrain001.jpg = test/fake/copied.jpg" in out


def test_hash_all_finds_what_a_sample_can_miss(tmp_path: Path) -> None:
    root = kaggle_tree(tmp_path / "dl", n=6) / KAGGLE
    tree = data_check.scan_tree(root)
    picked = data_check.pick_samples(tree, 1)
    unpicked = next(p for p in tree.files[("train", "real")] if p not in picked[("train", "real")])
    (root / "valid" / "real" / "leak.jpg").write_bytes(unpicked.read_bytes())
    assert data_check.check_tree(root, per_folder=0)["duplicates"]["found"] == 0  # nothing sampled
    rec = data_check.check_tree(root, per_folder=0, hash_all=True)
    assert rec["duplicates"]["found"] == 1 and rec["duplicates"]["mode"] == "all"


def test_check_catches_a_missing_class_and_a_wrong_format(tmp_path: Path, capsys) -> None:
    root = kaggle_tree(tmp_path / "dl") / KAGGLE
    for p in (root / "valid" / "fake").iterdir():
        p.unlink()
    (root / "valid" / "fake").rmdir()
    Image.new("RGB", (64, 64)).save(root / "train" / "real" / "small.png")
    assert data_main(["check", str(root), "--expect", "faces140k", "--accept-subset"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: valid/: the fake class folder is missing" in out
    assert "train/real: 1 of 4 sampled files are PNG 64x64 (1), not JPEG 256x256" in out


def test_check_user_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert data_main(["check", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


# 2. the fetch ------------------------------------------------------------------------------------


def no_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))


@pytest.mark.parametrize("client", [None, ["kaggle"]], ids=["no client", "client, no credentials"])
def test_fetch_without_a_way_to_download_prints_the_steps_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, client
) -> None:
    no_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.setattr(data_fetch, "kaggle_command", lambda: client)
    out = tmp_path / "data"
    assert data_main(["fetch", "faces140k", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    why = "not installed" if client is None else "no Kaggle credentials"
    assert why in err
    for needed in (
        'pip install -e ".[data]"',
        "Create New Token",
        "~/.kaggle/kaggle.json",
        "KAGGLE_USERNAME",
        f"python -m dfig.data fetch faces140k --out {out}",
        "kaggle datasets download xhlulu/140k-real-and-fake-faces",
        "about 4 GB",
        "--archive",
        f"python -m dfig.data check {out} --expect faces140k",
    ):
        assert needed in err, needed
    assert not out.exists()  # nothing written


def test_credentials_are_found_where_the_client_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_credentials(monkeypatch, tmp_path / "home")
    assert data_fetch.kaggle_credentials() is None
    (tmp_path / "home" / ".kaggle").mkdir(parents=True)
    (tmp_path / "home" / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert data_fetch.kaggle_credentials().endswith("kaggle.json")
    no_credentials(monkeypatch, tmp_path / "other")
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert data_fetch.kaggle_credentials() == "KAGGLE_USERNAME/KAGGLE_KEY"


def test_fetch_with_a_fake_downloader_gives_a_tree_check_accepts(tmp_path: Path, capsys) -> None:
    calls: list[Path] = []
    out = tmp_path / "data"
    rec = data_fetch.fetch("faces140k", out, downloader=fake_downloader(calls))
    assert rec["complete"] and rec["members"] == 21 and rec["written"] == 21  # 18 images + 3 CSVs
    assert calls == [out / data_fetch.DOWNLOAD_DIR] and rec["archive_deleted"]
    assert not (out / data_fetch.DOWNLOAD_DIR / FACES140K.archive).exists()
    assert data_main(["check", str(out)]) == 0
    assert data_main(["check", str(out), "--expect", "faces140k", "--accept-subset"]) == 0
    # a second run finds it complete and downloads nothing
    assert (
        data_fetch.fetch("faces140k", out, downloader=fake_downloader(calls))["complete"] and len(calls) == 1
    )


def test_unpacking_resumes_and_never_overwrites_a_file_it_did_not_write(tmp_path: Path) -> None:
    archive = fake_archive(tmp_path / "dl.zip")
    out = tmp_path / "data"
    first = data_fetch.fetch("faces140k", out, archive=archive)
    assert first["written"] == 21 and archive.exists()  # an archive the user gave is never deleted
    (out / data_fetch.RECORD).unlink()  # as if interrupted before the end
    (out / KAGGLE / "test" / "fake" / "faketest000.jpg").unlink()
    again = data_fetch.fetch("faces140k", out, archive=archive)
    assert (again["written"], again["kept"]) == (1, 20)
    (out / data_fetch.RECORD).unlink()
    (out / KAGGLE / "train" / "real" / "realtrain000.jpg").write_bytes(b"someone else's file")
    with pytest.raises(ValueError, match="realtrain000.jpg is in the way"):
        data_fetch.fetch("faces140k", out, archive=archive)
    assert (out / KAGGLE / "train" / "real" / "realtrain000.jpg").read_bytes() == b"someone else's file"


def test_a_member_outside_the_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        data_fetch.member_path(tmp_path, "../evil.jpg")
    bad = tmp_path / "trunc.zip"
    bad.write_bytes(fake_archive(tmp_path / "ok.zip").read_bytes()[:3000])
    with pytest.raises(ValueError, match="not a complete zip archive"):
        data_fetch.unpack(bad, tmp_path / "out")


FAKE_KAGGLE = """
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
Path(sys.argv[0]).with_name("argv.json").write_text(__import__("json").dumps(args))
dest = Path(args[args.index("-p") + 1])
dest.mkdir(parents=True, exist_ok=True)
shutil.copyfile(sys.argv[0].replace("fake_kaggle.py", "archive.zip"), dest / (args[2].split("/")[1] + ".zip"))
"""


def test_the_kaggle_client_is_called_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The real code path (credentials found, the client run as a command) with a fake client."""
    fake_archive(tmp_path / "archive.zip")
    script = tmp_path / "fake_kaggle.py"
    script.write_text(FAKE_KAGGLE)
    no_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "not-a-real-token")
    monkeypatch.setattr(data_fetch, "kaggle_command", lambda: [sys.executable, str(script)])
    out = tmp_path / "data"
    assert data_main(["fetch", "faces140k", "--out", str(out)]) == 0
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv == ["datasets", "download", FACES140K.slug, "-p", str(out / data_fetch.DOWNLOAD_DIR)]
    assert f"data: {out / KAGGLE}" in capsys.readouterr().out
    assert data_main(["check", str(out)]) == 0


def test_fetch_command_template(tmp_path: Path) -> None:
    fake_archive(tmp_path / "archive.zip")
    cmd = f"{sys.executable} -c \"import shutil,sys; shutil.copyfile(sys.argv[1], sys.argv[2] + '/{{archive}}')\" "
    cmd += f"{tmp_path / 'archive.zip'} {{dest}}"
    out = tmp_path / "data"
    assert data_main(["fetch", "faces140k", "--out", str(out), "--command", cmd]) == 0
    assert (out / KAGGLE / "valid" / "real").is_dir()
    assert data_main(["fetch", "faces140k", "--out", str(tmp_path / "d2"), "--command", "false"]) == 2


# the check at the start of run_all ---------------------------------------------------------------


def test_paper_profile_refuses_a_mismatch_unless_a_subset_is_accepted(
    run_all, tmp_path: Path, capsys
) -> None:
    root = kaggle_tree(tmp_path / "dl", n=2) / KAGGLE
    paper = run_all.load_profile("paper")
    with pytest.raises(SystemExit, match="counts differ from faces140k.*--accept-subset"):
        data_check.check_for_run(paper, str(root))
    rec = data_check.check_for_run(paper, str(root), accept_subset=True)
    assert rec["status"] == "subset" and rec["accepted_subset"] and rec["severity"] == "error"
    from dfig.report import manifest

    man = json.loads(manifest.write_manifest(paper, [], 1.0, 0).read_text())
    assert man["data_check"]["accepted_subset"] is True
    assert man["data_check"]["counts"]["val"] == {"real": 2, "fake": 2}
    assert not Path(man["data_check"]["root"]).is_absolute()  # portable


def test_other_profiles_only_warn(run_all, tmp_path: Path, capsys) -> None:
    root = kaggle_tree(tmp_path / "dl", n=2) / KAGGLE
    (root / "test" / "real" / "dup.jpg").write_bytes(
        (root / "valid" / "real" / "realvalid000.jpg").read_bytes()
    )
    for name in ("smoke", "paper-standin"):
        rec = data_check.check_for_run(run_all.load_profile(name), str(root))
        assert rec["severity"] == "warning" and rec["duplicates"]["found"] == 1
        assert "DataWarning: 1 file(s) present in two folders" in capsys.readouterr().out
    for p in (root / "test" / "fake").iterdir():
        p.unlink()
    with pytest.raises(SystemExit, match="test/fake: no images"):
        data_check.check_for_run(run_all.load_profile("smoke"), str(root))  # a tree the runs cannot read
    rec = data_check.check_for_run(run_all.load_profile("smoke"), None)
    assert rec["status"] == "not run"
    assert io.load_json(paths.metrics_dir("smoke") / data_check.RECORD_NAME)["status"] == "not run"
