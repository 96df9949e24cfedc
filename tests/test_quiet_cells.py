"""Quiet cells (issue 21): a progress bar leaves at most its final line in an executed notebook (stdout,
not a pink stderr box), no empty stderr box, no stray return value at a cell's end, and warnings read
``Category: [stage] reason`` without the library file's path."""

from __future__ import annotations

import ast
import json
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

from dfig import paths, progress
from dfig.report.executed import portable_notebook, tidy_streams

NOTEBOOKS = sorted((paths.root() / "notebooks").glob("*.ipynb"))


def test_final_mode_prints_only_the_last_line_on_stdout(monkeypatch, capsys) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "final")
    for _ in progress.tqdm(range(50), desc="segment [prior]", unit="img"):
        pass
    for _ in progress.tqdm(range(5), desc="eval", leave=False):
        pass
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [out.strip()] and out.startswith("segment [prior]: 100%") and "50/50" in out


def test_progress_mode_names_the_variable_when_wrong(monkeypatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "loud")
    with pytest.raises(ValueError, match="DFIG_PROGRESS='loud': expected one of auto, final, off"):
        progress.tqdm(range(3))


def test_warnings_name_no_file(monkeypatch) -> None:
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    progress.quiet_warnings()
    msg = "FALLBACK [lnp]: using classical denoiser instead of CycleISP"
    text = warnings.formatwarning(msg, UserWarning, "/opt/x/lib/dfig/fallback.py", 63, "warnings.warn(msg)")
    assert text == f"UserWarning: {msg}\n"


def test_tidy_streams_keeps_each_line_in_its_last_state() -> None:
    outs = [
        {"output_type": "stream", "name": "stderr", "text": "\r  0%|  | 0/4\r 50%|# | 2/4"},
        {"output_type": "stream", "name": "stderr", "text": "\r100%|##| 4/4\n"},
        {"output_type": "stream", "name": "stdout", "text": "done\n"},
        {"output_type": "stream", "name": "stderr", "text": "\n"},
        {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}},
    ]
    assert tidy_streams(outs) == [
        {"output_type": "stream", "name": "stderr", "text": "100%|##| 4/4\n"},
        {"output_type": "stream", "name": "stdout", "text": "done\n"},
        outs[-1],
    ]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_cell_ends_by_displaying_what_it_saved(nb: Path) -> None:
    for cell in json.loads(nb.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code" or not src.strip():
            continue
        last = ast.parse(src).body[-1]
        call = last.value if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) else None
        end_line = src.splitlines()[last.end_lineno - 1].split("#")[0].rstrip()
        shown = call is not None and not end_line.endswith(";")
        if shown and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
            assert call.func.value.id != "io", (
                f"{nb.name}: a cell ends with io.{call.func.attr}(...): end it with ';'"
            )


@pytest.mark.slow
def test_an_executed_cell_has_no_stderr_box_and_one_bar_line(tmp_path: Path, monkeypatch) -> None:
    """A real kernel (as papermill runs it, DFIG_PROGRESS=final): a bar, a dfig warning, a save."""
    from nbclient import NotebookClient

    monkeypatch.setenv(progress.PROGRESS_ENV, "final")
    monkeypatch.setenv("PYTHONPATH", str(paths.root() / "lib"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import warnings\nfrom dfig.progress import quiet_warnings, tqdm\nquiet_warnings()\n"
            "for _ in tqdm(range(200), desc='LNP compat', unit='img'):\n    pass\n"
            "from dfig.fallback import use_fallback\n"
            "use_fallback('lnp', 'classical denoiser', 'CycleISP', 'weights missing', allowed=True);"
        )
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, str(path))
    outs = json.loads(portable_notebook(path).read_text())["cells"][0]["outputs"]
    streams = {o["name"]: "".join(o["text"]) for o in outs if o["output_type"] == "stream"}
    assert [o["output_type"] for o in outs] == ["stream"] * len(outs), outs
    assert streams["stdout"].startswith("LNP compat: 100%") and streams["stdout"].count("\n") == 1
    assert streams["stderr"] == (
        "FallbackWarning: FALLBACK [lnp]: using classical denoiser instead of CycleISP (weights missing)\n"
    )
    assert "TqdmWarning" not in json.dumps(outs) and sys.prefix not in json.dumps(outs)
