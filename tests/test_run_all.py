"""run_all.py: profiles expand into runs, parameter names are checked, the paper profile refuses to
start without its files, and a failing notebook gives a non-zero exit naming notebook and cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from dfig import paths


@pytest.mark.parametrize("name", ["smoke", "sample", "paper"])
def test_profiles_expand_and_declare_only_known_parameters(run_all, name: str) -> None:
    prof = run_all.load_profile(name)
    runs = run_all.expand(prof, None, {})
    assert runs and all(r["parameters"]["profile"] == name for r in runs)
    names = [r["name"] for r in runs]
    assert len(names) == len(set(names)), "every run writes its own executed notebook"
    run_all.check_parameters(runs)  # raises SystemExit on an unknown name


def test_unknown_parameter_is_rejected(run_all) -> None:
    runs = [{"notebook": "02_lnp", "name": "02_lnp", "parameters": {"profile": "smoke", "no_such_knob": 1}}]
    with pytest.raises(SystemExit, match="no_such_knob"):
        run_all.check_parameters(runs)


@pytest.mark.parametrize("name", ["smoke", "sample", "paper", "paper-standin", "paper-standin-cpu"])
def test_every_profile_passes_the_key_check(run_all, name: str) -> None:
    run_all.check_profile(run_all.load_profile(name), name)


@pytest.mark.parametrize(
    ("typo", "where"),
    [({"allow_fallback": True}, "profile"), ({"runs": [{"notebook": "02_lnp", "parms": {"x": 1}}]}, "run")],
)
def test_unknown_profile_key_is_an_error_naming_the_key(
    run_all, tmp_path: Path, typo: dict, where: str
) -> None:
    prof = {"name": "t", "runs": [{"notebook": "02_lnp"}], **typo}
    bad = "allow_fallback" if where == "profile" else "parms"
    with pytest.raises(SystemExit, match=rf"profile t.yaml: unknown key\(s\) \['{bad}'\]"):
        run_all.check_profile(prof, "t.yaml")


def test_train_runs_are_named_by_arch_and_mode(run_all) -> None:
    runs = run_all.expand(run_all.load_profile("smoke"), None, {})
    names = {r["name"] for r in runs}
    assert {
        "04_train__mobilev2_mode0",
        "04_train__mobilev2_mode1",
        "04_train__mobilev2_mode2",
        "04_train__mobilev2_nosam",
    } <= names


def test_paper_profile_refuses_without_weights_and_data(run_all, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DFIG_WEIGHTS", str(tmp_path / "empty"))
    prof = run_all.load_profile("paper")
    runs = run_all.expand(prof, None, {})
    with pytest.raises(SystemExit) as e:
        run_all.preflight(prof, runs)
    msg = str(e.value)
    for f in ("sam_vit_h_4b8939.pth", "sidd_rgb.pth", "resnet50-19c8e357.pth"):
        assert f in msg, f"the refusal names {f}"
    assert "data_root" in msg


def test_list_runs_nothing(run_all, capsys) -> None:
    assert run_all.main(["--profile", "smoke", "--list"]) == 0
    out = capsys.readouterr().out
    assert "04_train__mobilev2_mode0" in out and "01_segmentation" in out


def test_failure_names_notebook_and_cell(run_all, tmp_path: Path, monkeypatch, capsys) -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# broken\nWrites nothing"),
        p,
        nbformat.v4.new_code_cell("raise ValueError('boom in cell two')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nbformat.write(nb, nbdir / "99_broken.ipynb")
    prof = tmp_path / "broken.yaml"
    prof.write_text("name: broken\ncommon: {profile: smoke}\nruns:\n  - notebook: 99_broken\n")
    monkeypatch.setattr(run_all, "NOTEBOOKS", nbdir)
    rc = run_all.main(["--profile", str(prof)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "99_broken" in err and "boom in cell two" in err and "cell" in err
    man = json.loads((paths.reports_dir("broken") / "manifest.json").read_text())
    assert man["status"] == "failed" and man["runs"][0]["status"] == "failed"
