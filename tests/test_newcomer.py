"""A newcomer's first hour (issue 12): quiet console with fallback lines, partial runs merged into the
manifest and the paper, offline HTML, README commands that run as written, tests that do not clobber
results, CI and pyproject agreeing on Python (3.10-3.13)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dfig import paths

ROOT = paths.root()


def tiny_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_all) -> Path:
    """A notebook that announces a fallback, and a two-run profile over it."""
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'tiny'\nx = 0")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# tiny\nWrites nothing"),
        p,
        nbformat.v4.new_code_cell(
            "from dfig.fallback import use_fallback\n"
            "rec = use_fallback('demo', 'a stand-in', 'the real thing', 'absent here')\n"
            "print('x =', x)"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nbformat.write(nb, nbdir / "01_tiny.ipynb")
    prof = tmp_path / "tiny.yaml"
    prof.write_text(
        "name: tiny\ncommon: {profile: tiny}\nruns:\n  - notebook: 01_tiny\n"
        "    grid:\n      - {x: 1}\n      - {x: 2}\n"
    )
    monkeypatch.setattr(run_all, "NOTEBOOKS", nbdir)
    monkeypatch.setenv("DFIG_PROFILE", "tiny")
    return prof


def test_console_is_quiet_and_names_each_fallback(
    run_all, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    prof = tiny_profile(tmp_path, monkeypatch, run_all)
    assert run_all.main(["--profile", str(prof)]) == 0
    out, err = capfd.readouterr()  # file-descriptor level: the kernels' own stderr is captured too
    console = out + err
    for noise in ("IPKernelApp", "without encryption", "KeyboardInterrupt"):
        assert noise not in console, console
    line = "FallbackWarning: FALLBACK [demo]: using a stand-in instead of the real thing"
    assert console.count(line) == 2, console  # one line per run that used it, reason left to the records
    assert "absent here" not in console
    html = (paths.executed_dir("tiny") / "01_tiny__1.html").read_text(encoding="utf-8")
    assert not re.findall(r"<script[^>]*\bsrc=[\"']?https?:", html), "HTML loads a script from the network"
    assert "x = 1" in html


def test_partial_runs_merge_into_the_manifest(
    run_all, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prof = tiny_profile(tmp_path, monkeypatch, run_all)
    assert run_all.main(["--profile", str(prof)]) == 0
    man_path = paths.reports_dir("tiny") / "manifest.json"
    full = json.loads(man_path.read_text())
    assert [e["run"] for e in full["runs"]] == ["01_tiny__1", "01_tiny__2"] and "partial_runs" not in full
    for _ in range(2):
        assert run_all.main(["--profile", str(prof), "--only", "01_tiny__2"]) == 0
    man = json.loads(man_path.read_text())
    assert [e["run"] for e in man["runs"]] == ["01_tiny__1", "01_tiny__2"]  # kept in place, not duplicated
    assert man["runs"][0] == full["runs"][0]
    assert man["total_seconds"] == pytest.approx(sum(e["seconds"] for e in man["runs"]), abs=0.11)
    assert man["total_seconds"] > man["runs"][1]["seconds"]  # not the partial run's own time
    assert [p["runs"] for p in man["partial_runs"]] == [["01_tiny__2"], ["01_tiny__2"]]


def test_partial_run_rebuilds_the_paper_or_says_it_is_stale(run_all, monkeypatch: pytest.MonkeyPatch) -> None:
    from dfig.report import paper

    profile = {"name": "tiny", "publish_pdf": False}
    pdf = paths.reports_dir("tiny") / "DFIG_v2.pdf"
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(b"%PDF old")
    built = []
    monkeypatch.setattr(paper, "build_paper", lambda name, publish=False: built.append(name) or pdf)
    runs = [{"notebook": "03_spectra"}]
    assert "rebuilt from the current results" in run_all.paper_line(profile, runs, 0, partial=True)
    assert built == ["tiny"]
    assert "STALE" in run_all.paper_line(profile, runs, 1, partial=True) and built == ["tiny"]
    line = run_all.paper_line(profile, [{"notebook": "06_paper"}], 0, partial=True)
    assert line.endswith(str(pdf)) and built == ["tiny"]  # the paper notebook ran: nothing to add


def readme_commands() -> list[str]:
    """The command lines of the README's bash blocks (comments stripped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for ln in block.splitlines():
            cmd = ln.split("  #")[0].strip()
            if cmd and not cmd.startswith("#"):
                lines.append(cmd)
    return lines


def test_readme_commands_name_the_venv_programs() -> None:
    """No README command relies on an activated venv (``No module named 'dfig'`` after only ``make``)."""
    bare = re.compile(r"(^|&&\s*)(python|pytest|papermill|ruff|pip|jupyter)\b")
    offenders = [c for c in readme_commands() if bare.search(c)]
    assert not offenders, offenders
    assert not [c for c in readme_commands() if re.search(r"papermill \S+ (?!\"\$\{TMPDIR)", c)]


def test_readme_cheap_commands_run_as_written() -> None:
    """``--list``, ``--help`` and ``python -m dfig.weights`` from the README, run from the repo root."""
    cheap = [
        c
        for c in readme_commands()
        if c.startswith(".venv/bin/python ")
        and ("--list" in c or "--help" in c or c.endswith("-m dfig.weights"))
    ]
    assert any("--list" in c for c in cheap) and any("dfig.weights" in c for c in cheap)
    venv_python = ROOT / ".venv" / "bin" / "python"
    for cmd in cheap:
        argv = shlex.split(cmd)
        if not venv_python.exists():  # a checkout without its own .venv (a shared one): same program
            argv[0] = sys.executable
        r = subprocess.run(
            argv,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT / "lib")},
        )
        assert r.returncode == 0, f"{cmd}: {r.stderr[-2000:]}"
        assert "No module named" not in r.stderr


def test_make_test_writes_elsewhere() -> None:
    """make test's nbval and smoke runs get their own DFIG_REPORTS/DFIG_WORK (dry run)."""
    r = subprocess.run(
        ["make", "-n", "nbval", "smoke", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    for needle in ("--nbval-lax notebooks", "run_all.py --profile smoke"):
        line = next(ln for ln in r.stdout.splitlines() if needle in ln)
        assert "DFIG_REPORTS=" in line and "DFIG_WORK=" in line and "/work/test/" in line, line


def _fake_python(path: Path, version: str) -> None:
    """An executable at ``path`` that runs ``-c CODE`` as Python ``version`` claims to be (this Python,
    with ``sys.version_info``, ``sys.version`` and ``platform.python_version`` patched)."""
    major, minor, micro = (int(x) for x in version.split("."))
    patch = (
        f"import platform, sys; sys.version_info = ({major}, {minor}, {micro}, 'final', 0); "
        f"sys.version = '{version} (fake)'; platform.python_version = lambda: '{version}'; "
        "exec(sys.argv[1])"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{patch}" "$2"\n')
    path.chmod(0o755)


def _fake_bin(tmp_path: Path, pythons: dict[str, str]) -> Path:
    """A PATH folder with fake pythons ``{name: version}``, a ``make`` that echoes, and bash/dirname."""
    b = tmp_path / "bin"
    b.mkdir(parents=True)
    for name, version in pythons.items():
        _fake_python(b / name, version)
    (b / "make").write_text('#!/bin/sh\necho "make $*"\n')
    (b / "make").chmod(0o755)
    for tool in ("bash", "dirname"):
        (b / tool).symlink_to(f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else f"/bin/{tool}")
    return b


def _ci(tmp_path: Path, pythons: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(_fake_bin(tmp_path, pythons)), "HOME": str(tmp_path), **env}
    return subprocess.run(
        ["/bin/bash", str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )


def test_pyproject_ci_and_find_python_agree_on_python_310_to_313() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.10,<3.14"' in text and 'target-version = "py310"' in text
    for v in ("3.10", "3.11", "3.12", "3.13"):
        assert f'"Programming Language :: Python :: {v}"' in text
    assert "SUPPORTED=(3.10 3.11 3.12 3.13)" in (ROOT / ".ci" / "find-python").read_text()
    deps = re.findall(r'"(torchvision|torch)([<>=!~][^"]*)"', text)
    assert dict(deps) == {"torch": ">=2.4", "torchvision": ">=0.19"}, "ranges: a user's own torch stays"
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", pins, re.M) and re.search(r"^torchvision==\d", pins, re.M)
    make = (ROOT / "Makefile").read_text()
    assert "-c $(CONSTRAINTS) -e" in make and "constraints.txt" in (ROOT / "environment.yml").read_text()


def test_ci_uses_the_newest_supported_python_on_path(tmp_path: Path) -> None:
    r = _ci(tmp_path, {"python3.10": "3.10.13", "python3.12": "3.12.1", "python3": "3.9.18"})
    assert r.returncode == 0, r.stderr
    assert "CI: Python 3.12.1 (python3.12, the newest supported on PATH)" in r.stdout
    assert "make test PYTHON=python3.12" in r.stdout


def test_ci_refuses_without_a_supported_python_and_takes_a_given_one(tmp_path: Path) -> None:
    r = _ci(tmp_path, {"python3": "3.9.18"})
    assert r.returncode == 2 and "3.10, 3.11, 3.12 or 3.13" in r.stderr and "make" not in r.stdout
    _fake_python(tmp_path / "other" / "py", "3.13.0")
    r = _ci(tmp_path / "given", {"python3.12": "3.12.1"}, PYTHON=str(tmp_path / "other" / "py"))
    assert r.returncode == 0 and "CI: Python 3.13.0" in r.stdout and "given as PYTHON" in r.stdout
    assert f"make test PYTHON={tmp_path / 'other' / 'py'}" in r.stdout


def test_find_python_looks_in_pyenv_for_a_version(tmp_path: Path) -> None:
    _fake_python(tmp_path / "pyenv" / "versions" / "3.12.7" / "bin" / "python3.12", "3.12.7")
    env = {"PATH": str(_fake_bin(tmp_path, {"python3": "3.11.7"})), "PYENV_ROOT": str(tmp_path / "pyenv")}
    find = ["/bin/bash", str(ROOT / ".ci" / "find-python")]
    r = subprocess.run([*find, "3.12"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("python3.12 3.12.7"), r.stdout
    r = subprocess.run(find, capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.strip() == "python3 3.11.7", "the newest is looked for on PATH only"
    r = subprocess.run([*find, "3.13"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""


def test_roc_styles_distinguish_eleven_runs() -> None:
    from dfig.report.plots import curve_style

    styles = [curve_style(i) for i in range(11)]
    keys = {(s["color"], s["ls"], s["marker"]) for s in styles}
    assert len(keys) == 11
    assert len({s["color"] for s in styles[:10]}) == 10 and styles[0]["ls"] != styles[10]["ls"]


def test_one_epoch_training_log_is_drawn_as_values() -> None:
    import pandas as pd

    from dfig.report.plots import training_curves

    log = pd.DataFrame(
        {"epoch": [1], "train_loss": [0.7], "val_loss": [0.6], "val_acc": [0.625], "val_auc": [0.7]}
    )
    fig = training_curves(log, "one")
    a, b = fig.axes[:2]
    assert list(a.get_xticks()) == [1.0] and a.get_xlim() == (0.0, 2.0)
    assert "one epoch" in a.get_title()
    assert any("0.625" in t.get_text() for t in b.get_legend().get_texts())
    two = training_curves(pd.concat([log, log.assign(epoch=2)]), "two")
    assert "one epoch" not in two.axes[0].get_title()
