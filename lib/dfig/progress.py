"""Progress bars that suit where they are drawn: widget bars in JupyterLab, one final line in papermill.

Every stage makes its bars with :func:`tqdm` (same arguments as ``tqdm.tqdm``). ``DFIG_PROGRESS``
chooses the kind: ``auto`` (default: tqdm's choice, widget bars in a Jupyter kernel with ipywidgets,
text bars in a terminal), ``final`` (set by ``run_all.py`` for papermill runs, which have no widget
front end: nothing while the bar runs, then its final line on stdout, or nothing for ``leave=False``
bars), ``off``. :func:`quiet_warnings` makes a notebook's warnings one line each, with no file path.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from typing import Any

PROGRESS_ENV = "DFIG_PROGRESS"
PROGRESS_MODES = ("auto", "final", "off")


def progress_mode() -> str:
    """``DFIG_PROGRESS`` (``auto``, ``final`` or ``off``; unset = ``auto``). Raises ``ValueError`` naming it."""
    v = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if v not in PROGRESS_MODES:
        raise ValueError(f"{PROGRESS_ENV}={v!r}: expected one of {', '.join(PROGRESS_MODES)}")
    return v


def _final_line_class() -> type:
    from tqdm.std import tqdm as std_tqdm

    class FinalLine(std_tqdm):
        """A text bar drawn into a buffer; on close it prints its last state as one line on stdout."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            kw["file"] = io.StringIO()
            kw["mininterval"] = float("inf")
            super().__init__(*args, **kw)

        def close(self) -> None:
            if self.disable:
                return
            line, leave = self.__str__(), self.leave
            super().close()
            if leave:
                print(line.strip(), file=sys.stdout, flush=True)

    return FinalLine


def tqdm(*args: Any, **kw: Any) -> Any:
    """A progress bar of the kind ``DFIG_PROGRESS`` asks for (arguments as ``tqdm.tqdm``).

    Returns: a tqdm instance (iterate it, ``update`` it, ``close`` it, as any tqdm bar).
    """
    mode = progress_mode()
    if mode == "off":
        kw["disable"] = True
    if mode == "final":
        return _final_line_class()(*args, **kw)
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm(*args, **kw)


def _one_line(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
    return f"{category.__name__}: {message}\n"


def quiet_warnings() -> None:
    """Show each warning as ``Category: message`` (the message says the stage and the reason), without
    the path and source line of the library file that raised it. Called by :func:`dfig.notebook.start`."""
    warnings.formatwarning = _one_line


__all__ = ["PROGRESS_ENV", "PROGRESS_MODES", "progress_mode", "quiet_warnings", "tqdm"]
