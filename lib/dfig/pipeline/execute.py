"""Execute one notebook run with papermill: the work of one run, wherever it runs (in-process, a local
worker process, a Slurm job). A run is a plain dict (``spec``) so that it can travel to another process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.report import executed


class RunFailed(RuntimeError):
    """A notebook run failed; ``entry`` is its manifest record (status ``failed``, the cell and error)."""

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry.get("error"))
        self.entry = entry


def make_spec(run: dict[str, Any], profile: dict[str, Any], notebooks: Path) -> dict[str, Any]:
    """What a worker needs to execute ``run`` of ``profile``: notebook file, parameters, output, env.

    Arguments: ``run`` run_all's expanded run; ``notebooks`` the folder of the notebooks.
    Returns: a JSON-able dict (see :func:`execute_spec`).
    """
    out = paths.executed_dir(profile["name"]) / f"{run['name']}.ipynb"
    return {
        "name": run["name"],
        "notebook": run["notebook"],
        "input": str(Path(notebooks) / f"{run['notebook']}.ipynb"),
        "cwd": str(notebooks),
        "output": str(out),
        "parameters": run["parameters"],
        "env": {
            "DFIG_PROFILE": profile["name"],
            "DFIG_NOTEBOOK": run["name"],
            "DFIG_ALLOW_FALLBACKS": "1" if profile.get("allow_fallbacks", True) else "0",
            # no widget front end in papermill: each progress bar leaves only its final line
            "DFIG_PROGRESS": os.environ.get("DFIG_PROGRESS") or "final",
        },
    }


def execute_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute one run described by :func:`make_spec` in this process; return its manifest entry.

    The spec's ``env`` (and a worker's thread count) is exported first, so the kernel inherits it.
    Raises :class:`RunFailed` (with the entry) when a cell fails.
    """
    import papermill as pm

    out = Path(spec["output"])
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(spec["env"])
    t0 = time.time()
    entry = {
        "run": spec["name"],
        "notebook": f"notebooks/{spec['notebook']}.ipynb",
        "output": paths.portable(out),
        "parameters": spec["parameters"],
    }
    try:
        pm.execute_notebook(
            spec["input"],
            str(out),
            parameters=spec["parameters"],
            cwd=spec["cwd"],
            progress_bar=False,
            kernel_name="python3",
            request_save_on_cell_execute=False,
            kernel_manager_class=kernel_manager_class(),
        )
    except pm.PapermillExecutionError as e:
        entry.update(
            status="failed",
            seconds=round(time.time() - t0, 1),
            error=f"cell {e.exec_count} (execution count): {e.ename}: {e.evalue}",
        )
        if out.exists():
            executed.portable_notebook(out)  # the failed copy names no machine path either
        raise RunFailed(entry) from e
    entry.update(status="ok", seconds=round(time.time() - t0, 1))
    executed.export_html(out)
    return entry


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`execute_spec` that never raises for a failed notebook: what a worker process or a Slurm job
    returns. Returns: ``{"ok": bool, "entry": manifest entry, "host": node name}``."""
    import socket

    try:
        return {"ok": True, "entry": execute_spec(spec), "host": socket.gethostname()}
    except RunFailed as f:
        return {"ok": False, "entry": f.entry, "host": socket.gethostname()}


def kernel_manager_class() -> type:
    """The kernel manager papermill uses: local IPC transport, and no SIGINT at shutdown.

    A kernel on TCP logs ``Kernel is running over TCP without encryption`` at every start; over IPC
    the sockets are files next to the connection file and nothing is printed. jupyter_client also
    sends SIGINT before every shutdown request; a kernel that is still inside a message handler when
    it lands logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel`` although the notebook
    succeeded. Here shutdown is the plain shutdown request (jupyter_client still kills a kernel that
    does not exit in time). Each kernel gets its own socket prefix in the temporary folder, so kernels
    started at the same time never share one. Returns: an ``AsyncKernelManager`` subclass (class, not instance).
    """
    import tempfile
    import uuid

    from jupyter_client import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class LocalKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _unique_ip(self) -> str:
            # jupyter_client's default is "kernel-ipc" in the cwd, with ports counted from 1: two kernels
            # started at once (run_all.py --jobs) would share sockets. One unique prefix per kernel.
            return str(Path(tempfile.gettempdir()) / f"dfig-kernel-{uuid.uuid4().hex[:12]}-ipc")

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:  # the interrupt jupyter_client sends before a shutdown request
                return
            await super()._async_interrupt_kernel()

    return LocalKernelManager


__all__ = ["RunFailed", "execute_spec", "kernel_manager_class", "make_spec", "run_spec"]
