"""dfig.paths.portable / resolve: no output names an absolute path of the machine that made it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from test_predict import extract, fake_checkpoint, make_raw_tree

from dfig import io, paths

REPO = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = (".csv", ".json", ".md", ".html", ".ipynb", ".txt", ".tex")
#: an absolute POSIX path: "/" + a name, after a start, a space, a quote, "(", "=", ",", ":" or "["
ABSOLUTE = re.compile(r"""(?:^|[\s"'(=,:\[])(/(?:[A-Za-z0-9_.~-]+/)*[A-Za-z0-9_.~-]*[A-Za-z0-9_~-])""")


def machine_paths(folder: Path, markers: tuple[str, ...] = ()) -> list[str]:
    """``file: path`` for every absolute path (or marker string) in the text files under ``folder``.

    ``markers`` (this machine's folders) count when written as such, not inside ``../folder`` (relative).
    """
    found = []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or f.suffix not in TEXT_SUFFIXES:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".html":  # the offline template's CSS and markup hold no file paths
            text = re.sub(r"<style.*?</style>|<[^>]+>", " ", text, flags=re.S)
        named = [m for m in markers if m and re.search(r"(?<![.\w])" + re.escape(m), text)]  # not "../m"
        hits = [m.group(1) for m in ABSOLUTE.finditer(text)] + named
        found += [f"{f.relative_to(folder)}: {h}" for h in hits[:3]]
    return found


@pytest.fixture
def fake_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repository root at ``tmp/repo`` with work/ and reports/ inside it, as in a real checkout."""
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.setenv("DFIG_ROOT", str(repo))
    monkeypatch.setenv("DFIG_PROFILE", "smoke")  # notebook.start in an earlier test may have set another
    for name in ("DFIG_WORK", "DFIG_REPORTS", "DFIG_DATA", "DFIG_SAMPLE_DATA", "DFIG_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    paths.root.cache_clear()
    yield repo
    paths.root.cache_clear()


def test_portable_forms_and_resolve_round_trip(fake_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = fake_repo.parent / "shared" / "data" / "x.png"
    assert paths.portable(fake_repo / "work" / "smoke" / "lnp") == "work/smoke/lnp"
    assert paths.portable(fake_repo) == "."
    assert paths.portable(outside) == "../shared/data/x.png"
    assert paths.resolve("../shared/data/x.png") == outside
    assert paths.resolve("work/smoke") == fake_repo / "work" / "smoke"
    monkeypatch.setenv("DFIG_WORK", str(fake_repo.parent / "scratch"))
    p = paths.portable(fake_repo.parent / "scratch" / "smoke" / "faces")
    assert p == "$DFIG_WORK/smoke/faces"
    assert paths.resolve(p) == fake_repo.parent / "scratch" / "smoke" / "faces"
    assert paths.portable(outside, data_root=outside.parent) == "$DFIG_DATA/x.png"
    assert paths.resolve("$DFIG_DATA/x.png", data_root=outside.parent) == outside
    assert paths.portable("$DFIG_WORK/a") == "$DFIG_WORK/a"
    assert (
        paths.portable("work/smoke/lnp") == "work/smoke/lnp"
    )  # already portable: kept, not made relative twice
    with pytest.raises(ValueError, match="DFIG_NOPE"):
        paths.resolve("$DFIG_NOPE/a")


def test_portable_text_and_obj(fake_repo: Path) -> None:
    reason = f"expected w.pth in {fake_repo}/pretrained/ but it is not there; see {Path.home()}/notes"
    assert paths.portable_text(reason) == "expected w.pth in ./pretrained/ but it is not there; see ~/notes"
    obj = {"run_dir": fake_repo / "work" / "c", "list": [str(fake_repo / "a.csv"), 3, None], "n": 1.5}
    assert paths.portable_obj(obj) == {"run_dir": "work/c", "list": ["a.csv", 3, None], "n": 1.5}


def test_stage_record_folders_are_portable_and_resolve(fake_repo: Path) -> None:
    out = fake_repo / "work" / "smoke" / "lnp"
    io.write_stage_meta(out, {"input_dir": str(fake_repo.parent / "raw"), "input": {"mask_dir": out / "m"}})
    rec = io.read_stage_meta(out)
    assert rec["input_dir"] == "../raw" and rec["input"]["mask_dir"] == "work/smoke/lnp/m"
    assert paths.resolve(rec["input_dir"]) == fake_repo.parent / "raw"


def test_checker_finds_absolute_paths(tmp_path: Path) -> None:
    """The scanner used below is not vacuous: it finds what today's reports hold, and ignores URLs."""
    (tmp_path / "a.csv").write_text("path,p\n/work/main/work/sample/lnp/x.png,0.5\n")
    (tmp_path / "b.md").write_text("Masked faces in work/sample/faces, see https://example.org/a/b\n")
    (tmp_path / "c.json").write_text(json.dumps({"reason": "expected x in /home/u/pretrained/ but"}))
    assert [h.split(":")[0] for h in machine_paths(tmp_path)] == ["a.csv", "c.json"]


def run_pipeline_pieces(repo: Path, data: Path) -> Path:
    """Segment -> LNP -> predictions -> metrics, table, manifest, executed notebook into reports/smoke."""
    from dfig.report import executed, manifest
    from dfig.stages.predict import predict_folder

    raw = make_raw_tree(data)
    work = paths.work_dir("smoke")
    lnp = extract(raw, work, "compat")
    io.save_metrics(io.read_stage_meta(lnp), "lnp_lnp_compat")
    io.save_table(pd.DataFrame({"n": [4]}), "segmentation_faces", caption=f"Masked faces in {work / 'faces'}")
    paths.checkpoints_dir("smoke").mkdir(parents=True)
    ck = fake_checkpoint(paths.checkpoints_dir("smoke") / "model_epoch_best.pth", io.read_stage_meta(lnp))
    df = predict_folder(ck, lnp / "test")
    src = io.save_predictions_csv(df, work / "predictions_test.csv")
    io.copy_predictions_csv(src, paths.predictions_dir("smoke") / "run_test.csv")
    io.save_metrics({"paths": {"best": ck, "dataroot": str(lnp)}, "attrs": df.attrs}, "train_run")
    nb = paths.executed_dir("smoke") / "01_x.ipynb"
    io.save_json(executed_notebook(data, repo), nb)
    entry = {"run": "01_x", "output": paths.portable(nb), "parameters": {"data_root": paths.portable(data)}}
    executed.export_html(nb)
    manifest.write_manifest({"name": "smoke"}, [entry], 1.0, 0)
    return paths.reports_dir("smoke")


def executed_notebook(data: Path, repo: Path) -> dict:
    """What papermill leaves: absolute input/output paths in its metadata, paths in printed outputs."""
    out = {"output_type": "stream", "name": "stderr", "text": [f"FALLBACK: nothing in {repo}/pretrained/\n"]}
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "papermill": {
                "input_path": str(repo / "notebooks" / "01_x.ipynb"),
                "output_path": str(repo / "reports" / "smoke" / "executed" / "01_x.ipynb"),
                "parameters": {"data_root": str(data)},
            }
        },
        "cells": [
            {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": 1, "outputs": [out],
             "source": f'data_root = "{data}"\nprint("{repo}/work/smoke")'},
        ],
    }  # fmt: skip


@pytest.mark.slow
def test_pipeline_outputs_name_no_machine_path(fake_repo: Path) -> None:
    data = fake_repo.parent / "data"
    reports = run_pipeline_pieces(fake_repo, data)
    assert sorted(p.name for p in reports.iterdir()) == [
        "executed", "manifest.json", "metrics", "predictions", "provenance.json", "tables",
    ]  # fmt: skip
    markers = (str(fake_repo.parent), str(Path.home()), str(REPO))
    assert machine_paths(reports, markers) == []
    # readers resolve them back: the predictions name files that exist, the manifest records the roots
    pred = pd.read_csv(reports / "predictions" / "run_test.csv")
    assert len(pred) == 4 and all(paths.resolve(p).is_file() for p in pred["path"])
    man = io.load_json(reports / "manifest.json")
    assert man["roots"]["repository"] == "." and man["runs"][0]["parameters"]["data_root"] == "../data"
    assert paths.resolve(man["stages"]["lnp_compat"]["input_dir"]) == paths.work_dir("smoke") / "faces"


def committed_report_profiles() -> list:
    found = (
        sorted(p.name for p in (REPO / "reports").iterdir() if p.is_dir())
        if (REPO / "reports").is_dir()
        else []
    )
    return found


@pytest.mark.parametrize("profile", committed_report_profiles())
def test_committed_reports_name_no_machine_path(profile: str) -> None:
    markers = (
        str(REPO),
        str(REPO.parent),
        str(Path.home()),
        os.environ.get("USER", "") and f"/{os.environ['USER']}/",
    )
    found = machine_paths(REPO / "reports" / profile, tuple(markers))
    assert not found, f"{len(found)} machine paths in reports/{profile}, e.g. " + "; ".join(found[:5])


@pytest.mark.slow
def test_run_all_executed_notebooks_name_no_machine_path(run_all, tmp_path: Path, monkeypatch) -> None:
    """A real papermill run: its metadata (input/output paths) and printed paths come out portable."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    show = "from dfig import paths\nprint(paths.work_dir(), paths.root() / 'pretrained')"
    nb.cells = [nbformat.v4.new_markdown_cell("# paths"), p, nbformat.v4.new_code_cell(show)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nbformat.write(nb, nbdir / "98_paths.ipynb")
    prof = tmp_path / "pathsprof.yaml"
    prof.write_text("name: pathsprof\ncommon: {profile: smoke}\nruns:\n  - notebook: 98_paths\n")
    monkeypatch.setattr(run_all, "NOTEBOOKS", nbdir)
    assert run_all.main(["--profile", str(prof)]) == 0
    executed = paths.executed_dir("pathsprof")
    assert sorted(f.name for f in executed.iterdir()) == ["98_paths.html", "98_paths.ipynb"]
    text = (executed / "98_paths.ipynb").read_text()
    assert "$DFIG_WORK/pathsprof" in text and "./pretrained" in text  # printed, then made portable
    assert machine_paths(paths.reports_dir("pathsprof"), (str(tmp_path), str(REPO), str(Path.home()))) == []


def test_rewritten_outputs_do_not_make_the_code_dirty(fake_repo: Path) -> None:
    import subprocess

    from dfig.report.manifest import git_info

    def git(*a: str) -> None:
        subprocess.run(["git", *a], cwd=fake_repo, check=True, capture_output=True)

    (fake_repo / "reports" / "sample").mkdir(parents=True)
    (fake_repo / "reports" / "sample" / "models.csv").write_text("a\n")
    (fake_repo / "run_all.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_info()["dirty"] is False
    (fake_repo / "reports" / "sample" / "models.csv").write_text("b\n")  # a rerun rewrote a result
    assert git_info()["dirty"] is False
    (fake_repo / "run_all.py").write_text("x = 2\n")  # the code changed
    assert git_info()["dirty"] is True
