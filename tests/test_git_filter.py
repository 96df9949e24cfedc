"""Notebooks stay clean in git whatever JupyterLab does (issue 21): ``make install`` installs nbstripout's
git filter (``.gitattributes`` is committed), and the committed kernel metadata is the kernel that
``make install`` registers, so opening, running and saving a notebook in JupyterLab leaves no diff."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfig import paths

ROOT = paths.root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LANGUAGE_INFO = {  # what JupyterLab's kernel reports and the saved file then holds
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": "3.11.2",
}
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def registered_kernel() -> dict[str, str]:
    """The kernel ``make install`` registers (``ipykernel install --name N --display-name D``)."""
    m = re.search(
        r'ipykernel install [^\n]*--name (\S+) --display-name "([^"]+)"', (ROOT / "Makefile").read_text()
    )
    assert m, "Makefile: make install registers no kernel"
    return {"name": m.group(1), "display_name": m.group(2), "language": "python"}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def filtered_repo(tmp_path: Path) -> Path:
    """A git repository with the committed notebooks, after ``make git-filter`` (a step of make install)."""
    return make_filtered_repo(tmp_path)


def make_filtered_repo(tmp_path: Path) -> Path:
    """:func:`filtered_repo` (skips when git, make or nbstripout is missing). Returns the repository."""
    if not shutil.which("git") or not shutil.which("make"):
        pytest.skip("git or make not installed: the notebook filter cannot be tried")
    pytest.importorskip("nbstripout", reason="nbstripout not installed (pip install -e '.[dev]')")
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    for name in ("Makefile", ".gitattributes", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    for nb in NOTEBOOKS:
        shutil.copy2(nb, repo / "notebooks" / nb.name)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "config", "user.name", "test")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "notebooks as committed")
    venv = Path(sys.prefix)  # the environment make install built; -o: never rebuild it here
    subprocess.run(
        ["make", "-s", "git-filter", f"VENV={venv}", "-o", f"{venv}/.dfig-installed"],
        cwd=repo,
        check=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return repo


def save_as_jupyterlab(path: Path, root: Path) -> None:
    """Open, run and save a notebook the way JupyterLab does: the server's contents manager writes the
    kernel JupyterLab started, its ``language_info``, outputs, execution counts and cell metadata."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    cm = FileContentsManager(root_dir=str(root))
    rel = path.relative_to(root).as_posix()
    model = cm.get(rel, content=True)
    nb = model["content"]
    nb.metadata["kernelspec"] = registered_kernel()
    nb.metadata["language_info"] = LANGUAGE_INFO
    n = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        n += 1
        cell.execution_count = n
        cell.metadata["scrolled"] = True
        cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.000Z"}
        cell.outputs = [
            {"name": "stdout", "output_type": "stream", "text": f"/home/someone/work/cell {n}\n"},
            {"name": "stderr", "output_type": "stream", "text": "100%|##########| 4/4\n"},
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": PNG_1PX, "text/plain": "<Figure>"},
            },
            {
                "output_type": "execute_result",
                "execution_count": n,
                "metadata": {},
                "data": {"text/plain": "PosixPath('/tmp/x.json')"},
            },
        ]
    cm.save({"type": "notebook", "format": "json", "content": nb}, rel)


def test_committed_kernel_is_the_one_make_install_registers() -> None:
    want = registered_kernel()
    for nb in NOTEBOOKS:
        meta = json.loads(nb.read_text())["metadata"]
        assert meta.get("kernelspec") == want, f"{nb.name}: kernelspec {meta.get('kernelspec')} != {want}"
        assert "language_info" not in meta, (
            f"{nb.name}: language_info is stripped by the filter; commit it without"
        )


def test_gitattributes_route_notebooks_through_nbstripout() -> None:
    lines = (ROOT / ".gitattributes").read_text().splitlines()
    assert "*.ipynb filter=nbstripout" in lines and "*.ipynb diff=ipynb" in lines


@pytest.mark.slow
def test_notebook_saved_by_jupyterlab_leaves_no_git_diff(filtered_repo: Path) -> None:
    repo = filtered_repo
    for nb in sorted((repo / "notebooks").glob("*.ipynb")):
        save_as_jupyterlab(nb, repo)
        assert '"outputs": []' not in nb.read_text(), "the saved file should hold the outputs"
    assert git(repo, "diff") == ""
    # git status may still list a file whose size changed (git compares sizes before filtering);
    # staging it records nothing, so nothing can be committed
    git(repo, "add", "-A")
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "diff", "--cached") == ""


@pytest.mark.slow
def test_the_filter_still_shows_real_edits(filtered_repo: Path) -> None:
    nb = filtered_repo / "notebooks" / NOTEBOOKS[0].name
    data = json.loads(nb.read_text())
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["source"] = [*code["source"], "\n# a real edit"]
    nb.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    save_as_jupyterlab(nb, filtered_repo)
    diff = git(filtered_repo, "diff")
    assert '+    "# a real edit"' in diff or "# a real edit" in diff
    assert "PosixPath" not in diff and "language_info" not in diff and 'execution_count": 1' not in diff
