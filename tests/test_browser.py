"""The notebooks in a real JupyterLab, driven through Debian's chromium by Playwright (issue 21).

A JupyterLab server starts on a free local port with a token, over a git copy of the notebooks with
the filter ``make install`` installs. Every notebook opens on the project's kernel with no dialog and
no error; ``01_segmentation`` runs on the smoke profile with Run All and shows its figure, no error
output, no empty stderr box and no TqdmWarning; once JupyterLab has saved it with its outputs, git
sees no change. Screenshots go to the test's temporary folder. Skipped with one line when chromium or
Playwright is missing (``.ci/run`` installs both; never ``playwright install``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_git_filter import git, make_filtered_repo, registered_kernel

from dfig import paths

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: JupyterLab asks nothing at start: no news, no update check
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}
}
#: a notebook is open when its kernel is idle, or when a dialog asks something (then the test fails)
READY = """(name) => {
  if (document.querySelector('.jp-Dialog')) return true;
  const bar = document.querySelector('#jp-main-statusbar');
  return !!bar && bar.innerText.includes(name) && /[|] Idle/.test(bar.innerText) && !/No Kernel/.test(bar.innerText);
}"""
RUN_SECONDS = 100  # Run All on 01_segmentation (smoke): ~15 s on an idle 2-core machine

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_env(tmp: Path) -> dict[str, str]:
    """The server's environment: its own Jupyter folders (no user state), outputs under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws inline figures
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("IPYTHONDIR", "ipython"),
    ):
        env[name] = str(tmp / "jupyter" / sub)
    for key, value in LAB_SETTINGS.items():
        f = tmp / "jupyter" / "settings" / f"{key}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env.update(DFIG_ROOT=str(paths.root()), PYTHONPATH=os.pathsep.join(sys.path))
    return env


@pytest.fixture()
def lab(filtered_repo: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab over the filtered copy; yields (base URL with token, repository)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium): browser test skipped")
    pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    pytest.importorskip("jupyterlab", reason="JupyterLab not installed (pip install -e '.[dev]')")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    cmd += [f"--ServerApp.root_dir={filtered_repo}", "--LabApp.extension_manager=readonly"]  # asks no index
    cmd += (
        ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    )  # CI containers run as root
    proc = subprocess.Popen(cmd, env=_lab_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(
                        f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        yield f"{base}/lab/tree/notebooks/{{}}?token={token}", filtered_repo
    finally:
        req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)  # stops the kernels it started
            proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.fixture()
def filtered_repo(tmp_path: Path) -> Path:
    return make_filtered_repo(tmp_path)


def _open(page, url: str, shots: Path, name: str) -> None:
    """Open a notebook; wait for its kernel to be idle; check the kernel's name and that nothing pops up."""
    page.goto(url)
    page.wait_for_function(READY, arg=url.split("/")[-1].split("?")[0], timeout=90_000)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    kernel = panel.locator(".jp-Toolbar-kernelName").inner_text().strip()
    page.screenshot(path=str(shots / f"{name}.png"))
    assert kernel == registered_kernel()["display_name"], f"{name}: opens on kernel {kernel!r}"
    assert page.locator(".jp-Dialog").count() == 0, (
        f"{name}: a dialog popped up: {page.locator('.jp-Dialog').inner_text()}"
    )
    assert panel.locator("[data-mime-type='application/vnd.jupyter.error']").count() == 0
    _save(
        page
    )  # JupyterLab adds the kernel's language_info: git must still see no change (checked at the end)


def _save(page) -> None:
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.lm-mod-current.jp-mod-dirty", state="detached", timeout=30_000)


def test_notebooks_in_jupyterlab(lab: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, repo = lab
    shots = tmp_path / "screenshots"
    shots.mkdir()
    notebooks = sorted(p.name for p in (repo / "notebooks").glob("*.ipynb"))
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            for nb in notebooks:
                _open(page, url.format(nb), shots, nb.removesuffix(".ipynb"))
                _stop_kernels(url)  # one kernel at a time: the machine may be small
            _open(page, url.format("01_segmentation.ipynb"), shots, "01_segmentation_before_run")
            _run_all_and_save(page, shots)
            assert not errors, f"JavaScript errors in JupyterLab: {errors}"
        finally:
            ctx.close()
    saved = json.loads((repo / "notebooks" / "01_segmentation.ipynb").read_text())
    assert any(c.get("outputs") for c in saved["cells"]), "JupyterLab saved no outputs"
    assert git(repo, "diff") == "", "a notebook saved by JupyterLab shows a git diff"
    assert git(repo, "add", "-A") == "" and git(repo, "status", "--porcelain") == "", "something to commit"


def _stop_kernels(url: str) -> None:
    """Shut down every kernel the server runs (REST API; the notebooks stay open)."""
    base, token = url.split("/lab/")[0], url.split("token=")[1]
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        kernels = json.load(r)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req, timeout=30)


def _run_all_and_save(page, shots: Path) -> None:
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    deadline = time.time() + RUN_SECONDS
    while time.time() < deadline:
        texts = [t.strip() for t in prompts.all_inner_texts()]
        if texts and all(t[1:-2].isdigit() for t in texts):
            break
        time.sleep(1)
    page.screenshot(path=str(shots / "01_segmentation_after_run.png"), full_page=True)
    assert all(t[1:-2].isdigit() for t in texts), (
        f"Run All did not finish in {RUN_SECONDS} s: prompts {texts}"
    )
    assert panel.locator("[data-mime-type='application/vnd.jupyter.error']").count() == 0, "error output"
    assert panel.locator(".jp-RenderedImage img").count() >= 1, "no figure"
    panel.locator(".jp-RenderedImage img").last.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "01_segmentation_figure.png"))
    stderr = [
        t.strip()
        for t in panel.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    ]
    assert all(stderr), f"an empty stderr box: {stderr}"
    assert "TqdmWarning" not in panel.inner_text()
    _save(page)
