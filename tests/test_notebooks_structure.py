"""The notebooks stay thin and papermill-ready: one parsed `parameters` cell, no stored outputs."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from dfig import paths

NOTEBOOKS = sorted(paths.notebooks_dir().glob("*.ipynb"))


def test_notebooks_are_ordered() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names == sorted(names) and names[0].startswith("01_") and len(names) >= 6
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_structure(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "Writes" in nb.cells[0].source, (
        "first cell says what it writes"
    )
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, "committed without outputs"
    # every assignment in the parameters cell is visible to papermill (e.g. no '=' inside comments)
    assigned = {
        t.id
        for node in ast.parse(tagged[0].source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert assigned == set(pm.inspect_notebook(str(path))), "papermill must see every parameter"
    assert "profile" in assigned
    # thin: no function or class definitions in notebooks (logic lives in dfig)
    for c in nb.cells:
        if c.cell_type == "code":
            tree = ast.parse(c.source)
            assert not any(isinstance(n, ast.FunctionDef | ast.ClassDef) for n in ast.walk(tree)), path.name
