"""What every notebook does first: collect its parameters, set the profile, seeds and device, find data.

A notebook's second cell is::

    from dfig.notebook import start
    ctx = start("02_lnp", globals())

:func:`start` reads the parameters (the simple-valued globals defined by the ``parameters`` cell and
papermill's injected cell), exports them for provenance (``DFIG_PARAMS``), seeds every RNG, and
returns a :class:`RunContext` with the profile's folders. Opening a notebook in JupyterLab and
running it top to bottom does exactly what papermill does.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.accel import resolve_device, seed_everything
from dfig.io import STAGE_META, read_stage_meta
from dfig.progress import quiet_warnings

_SIMPLE = (str, int, float, bool, type(None), list, dict, tuple)
_IPY_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


class IncompleteStageError(ValueError):
    """A stage record says its stage did not finish (``complete: false``): its tree is partial."""


class IncompleteStageWarning(UserWarning):
    """An incomplete stage is used anyway, because the user allowed it (it is recorded)."""


def incomplete_stages(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The records in a stage record's ``"input"`` chain that say their stage did not finish.

    A record is incomplete when it says ``complete: false`` (a killed or failed extraction), or is a
    segmentation record whose ``counts`` are still ``null`` (written at the start, filled at the end).

    Arguments: ``meta`` a ``dfig_stage.json`` dict. Returns: ``[{"stage", "depth", "input_dir"}]``,
    depth 0 = the tree itself, 1 = its input, ...
    """
    out, depth, m = [], 0, dict(meta or {})
    while m:
        unfinished = m.get("complete") is False or (
            m.get("stage") == "segmentation" and "counts" in m and m["counts"] is None
        )
        if unfinished:
            out.append({"stage": m.get("stage", "?"), "depth": depth, "input_dir": m.get("input_dir")})
        m, depth = dict(m.get("input") or {}), depth + 1
    return out


def allow_incomplete_default() -> bool:
    """``DFIG_ALLOW_INCOMPLETE`` set to 1/true/yes: use incomplete stages (warned and recorded)."""
    return os.environ.get("DFIG_ALLOW_INCOMPLETE", "").strip().lower() in {"1", "true", "yes"}


def check_complete(
    root: str | os.PathLike[str],
    allow: bool | None = None,
    fix: str = "run the stage again (it resumes where it stopped)",
) -> list[dict[str, Any]]:
    """Refuse a tree whose stage record (or an input's) says it is incomplete; or warn, when allowed.

    Arguments: ``root`` a stage's output folder; ``allow`` use it anyway (``None``: the environment,
    :func:`allow_incomplete_default`); ``fix`` how to finish it (for the message).
    Returns: the incomplete records (``[]`` for a complete tree), each with ``root`` added, to be stored
    with the outputs. Raises :class:`IncompleteStageError` naming the tree, the stage and the fix.
    """
    found = [{**r, "root": str(root)} for r in incomplete_stages(read_stage_meta(root))]
    if not found:
        return []
    where = "; ".join(
        f"{r['stage']} stage" + (f" of its input {r['input_dir']}" if r["depth"] else "") for r in found
    )
    msg = (
        f"{root}: {STAGE_META} says the {where} did not finish (complete: false), so the tree is partial: "
        f"{fix}"
    )
    if not (allow_incomplete_default() if allow is None else allow):
        raise IncompleteStageError(
            f"{msg}; to use it as it is, pass allow_incomplete "
            "(--allow_incomplete, or DFIG_ALLOW_INCOMPLETE=1 for the notebooks)"
        )
    warnings.warn(f"INCOMPLETE INPUT used (allowed): {msg}", IncompleteStageWarning, stacklevel=2)
    return found


def collect_params(namespace: dict[str, Any]) -> dict[str, Any]:
    """The notebook's parameters: public globals with literal values (str, numbers, bools, lists...)."""
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPY_NAMES and isinstance(v, _SIMPLE)
    }


@dataclass
class RunContext:
    """The profile's folders and the notebook's parameters."""

    notebook: str
    profile: str
    params: dict[str, Any]
    device: str
    work: Path = field(init=False)
    reports: Path = field(init=False)
    incomplete: list[dict[str, Any]] = field(init=False, default_factory=list)
    notes: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.work = paths.work_dir(self.profile)
        self.reports = paths.reports_dir(self.profile)

    def data_root(self) -> Path:
        """The raw photo tree: ``data_root`` if given, else the profile default.

        A folder above one ``{train,val|valid,test}`` tree (a download's top folder) gives that tree.
        ``smoke``: the deterministic synthetic set (generated on first use in ``work/smoke/raw``);
        ``sample``: the real face sample (read in place); ``paper``: ``data_root`` is required.
        """
        given = str(self.params.get("data_root") or "")
        if given:
            from dfig.data.layout import LAYOUT_TEXT, find_data_root

            p = paths.resolve(given)  # portable (relative to the repository, or $NAME/...) or absolute
            if not p.is_dir():
                raise FileNotFoundError(
                    f"data_root {p} does not exist: pass a folder laid out as {LAYOUT_TEXT}"
                )
            try:
                root, note = find_data_root(p)  # a download's top folder: the one tree inside it
            except FileNotFoundError:
                return p  # no tree below either: the stage reading it names what is missing
            if note and note not in self.notes:
                print(note)
                self.notes.append(note)
            return root
        if self.profile == "sample":
            p = paths.sample_data_dir()
            if not p.is_dir():
                raise FileNotFoundError(
                    f"the sample profile reads the face sample at {p}, which is absent: "
                    "set DFIG_SAMPLE_DATA or pass data_root (see README, Data)"
                )
            return p
        if self.profile == "paper":
            raise FileNotFoundError(
                "the paper profile needs data_root: the full 140k FFHQ + 1M-Fake-Faces tree (README, Data)"
            )
        from dfig.data.synthetic import generate

        return generate(self.work / "raw", seed=int(self.params.get("seed", 0)))

    def stage_dir(self, name: str) -> Path:
        """A stage's output folder inside the profile's work folder (``work/<profile>/<name>``)."""
        return self.work / name

    def require(self, name: str, made_by: str) -> Path:
        """An earlier stage's output folder, or a clear error naming the notebook to run first.

        A folder whose stage record says it is incomplete is refused (:func:`check_complete`) unless
        ``allow_incomplete`` (parameter or ``DFIG_ALLOW_INCOMPLETE=1``): then it is warned about,
        kept in ``self.incomplete`` and written to ``reports/<profile>/metrics/incomplete_input_<nb>.json``.
        """
        p = self.stage_dir(name)
        if not (p / "dfig_stage.json").exists():
            raise FileNotFoundError(
                f"{p} is missing or incomplete: run notebooks/{made_by}.ipynb first with profile="
                f"{self.profile!r} (or `python run_all.py --profile {self.profile}`)."
            )
        allow = self.params.get("allow_incomplete")
        found = check_complete(
            p,
            None if allow is None else bool(allow),
            fix=f"run notebooks/{made_by}.ipynb again with profile={self.profile!r} to finish it",
        )
        if found:
            from dfig import io

            self.incomplete += found
            io.save_metrics(
                {"notebook": self.notebook, "incomplete": self.incomplete},
                f"incomplete_input_{self.notebook}",
            )
        return p

    @property
    def synthetic(self) -> bool:
        from dfig.data.synthetic import is_synthetic

        try:
            return is_synthetic(self.data_root())
        except FileNotFoundError:
            return False

    def label(self) -> str:
        """Tag for figure titles: says 'SYNTHETIC data' when the data are synthetic."""
        return f"[{self.profile} profile, SYNTHETIC data]" if self.synthetic else f"[{self.profile} profile]"


def run_label(notebook: str, current: str) -> str:
    """The name provenance records for this run: ``run_all.py``'s run name (``04_train__res50_mode0``)
    when it names this notebook, else the notebook (an interactive session, or one that ran another).

    Arguments: ``notebook`` this notebook's name; ``current`` the ``DFIG_NOTEBOOK`` value. Returns: the label.
    """
    return current if current == notebook or current.startswith(notebook + "__") else notebook


def start(notebook: str, namespace: dict[str, Any]) -> RunContext:
    """Set up a notebook run from its parameters (see module doc); prints a one-line header.

    Warnings are shown from here on as one line each (:func:`dfig.progress.quiet_warnings`).
    """
    params = collect_params(namespace)
    profile = str(params.get("profile", "smoke"))
    os.environ["DFIG_PROFILE"] = profile
    os.environ["DFIG_NOTEBOOK"] = run_label(notebook, os.environ.get("DFIG_NOTEBOOK", ""))
    os.environ["DFIG_PARAMS"] = json.dumps(params, default=str)
    if "allow_fallbacks" in params:
        os.environ["DFIG_ALLOW_FALLBACKS"] = "1" if params["allow_fallbacks"] else "0"
    seed_everything(int(params.get("seed", 0)))
    quiet_warnings()
    ctx = RunContext(notebook, profile, params, str(resolve_device(str(params.get("device", "auto")))))
    ctx.work.mkdir(parents=True, exist_ok=True)
    print(f"{notebook}: profile={profile} device={ctx.device} work={ctx.work} reports={ctx.reports}")
    return ctx


def train_run_name(params: dict[str, Any]) -> str:
    """Name of a training run: ``<arch>_mode<mode>`` or ``<arch>_<tag>`` for ablations."""
    if params.get("name"):
        return str(params["name"])
    arch = params.get("arch", "mobilev2")
    return f"{arch}_{params['tag']}" if params.get("tag") else f"{arch}_mode{params.get('train_mode', 0)}"


__all__ = [
    "IncompleteStageError",
    "IncompleteStageWarning",
    "RunContext",
    "allow_incomplete_default",
    "check_complete",
    "collect_params",
    "incomplete_stages",
    "run_label",
    "start",
    "train_run_name",
]
