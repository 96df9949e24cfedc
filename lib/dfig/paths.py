"""Every path the project uses, derived from one place.

The project root is found once (``DFIG_ROOT`` environment variable, else the first parent of the
current directory or of this file that holds ``pyproject.toml`` and ``run_all.py``). Everything else
is derived from it, from the profile name, or from an environment variable documented here:

========================  =====================================  ==============================
name                      default                                override
========================  =====================================  ==============================
``root()``                the repository                         ``DFIG_ROOT``
``reports_dir(profile)``  ``<root>/reports/<profile>``           ``DFIG_REPORTS`` (parent folder)
``work_dir(profile)``     ``<root>/work/<profile>``              ``DFIG_WORK`` (parent folder)
``weights_dir()``         ``<root>/pretrained``                  ``DFIG_WEIGHTS``
``sample_data_dir()``     ``<root>/../shared/data/faces140k-sample``  ``DFIG_SAMPLE_DATA``
========================  =====================================  ==============================

Every path written into an output (reports, stage records, predictions, executed notebooks) goes
through :func:`portable`: relative to the repository root (``..`` for data beside it), or
``$DFIG_WORK/...``-style when one of :data:`PORTABLE_ROOTS` is set to a folder outside it;
:func:`resolve` reads it back. The manifest records :func:`roots` once.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

_MARKERS = ("pyproject.toml", "run_all.py")


def _is_root(p: Path) -> bool:
    return all((p / m).exists() for m in _MARKERS)


@cache
def root() -> Path:
    """The project root (the folder holding ``pyproject.toml`` and ``run_all.py``)."""
    env = os.environ.get("DFIG_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            if _is_root(p):
                return p
    raise RuntimeError("Cannot find the DFIG project root: run from inside the repository or set DFIG_ROOT.")


def _env_path(name: str, default: Path) -> Path:
    v = os.environ.get(name)
    return Path(v).expanduser().resolve() if v else default


def current_profile() -> str:
    """The active profile: ``DFIG_PROFILE`` (set by run_all.py and notebooks), default ``smoke``."""
    return os.environ.get("DFIG_PROFILE", "smoke") or "smoke"


def reports_dir(profile: str | None = None) -> Path:
    """Regenerated results of one profile: figures/, tables/, metrics/, executed/, manifest.json.

    Each profile has its own folder (``reports/smoke``, ``reports/sample``, ``reports/paper``), so a
    quick smoke run never overwrites real-data results.
    """
    return _env_path("DFIG_REPORTS", root() / "reports") / (profile or current_profile())


def figures_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "figures"


def tables_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "tables"


def metrics_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "metrics"


def predictions_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "predictions"


def executed_dir(profile: str | None = None) -> Path:
    return reports_dir(profile) / "executed"


def work_dir(profile: str | None = None) -> Path:
    """Intermediate files of one profile: data, faces, LNPs, checkpoints (``work/<profile>``)."""
    return _env_path("DFIG_WORK", root() / "work") / (profile or current_profile())


def checkpoints_dir(profile: str | None = None) -> Path:
    return work_dir(profile) / "checkpoints"


def weights_dir() -> Path:
    """Folder holding the official checkpoints (``pretrained/``; override with ``DFIG_WEIGHTS``)."""
    return _env_path("DFIG_WEIGHTS", root() / "pretrained")


def sample_data_dir() -> Path:
    """The real face sample (FFHQ + StyleGAN, 256 px), read in place, never copied."""
    return _env_path("DFIG_SAMPLE_DATA", root().parent / "shared" / "data" / "faces140k-sample")


def profiles_dir() -> Path:
    return root() / "profiles"


def notebooks_dir() -> Path:
    return root() / "notebooks"


def paper_dir() -> Path:
    return root() / "paper"


def paper_pdf() -> Path:
    """The published paper at the top level (rebuilt by the sample and paper profiles)."""
    return root() / "DFIG_v2.pdf"


#: Roots a portable path may start from, as ``$NAME/...``, when the variable is set and points outside
#: the repository (``DFIG_DATA``: the data root a run reads, recorded once in the manifest's ``roots``).
PORTABLE_ROOTS = ("DFIG_DATA", "DFIG_SAMPLE_DATA", "DFIG_WORK", "DFIG_REPORTS", "DFIG_WEIGHTS")


def _labelled_roots(data_root: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
    """``($NAME, folder)`` for every portable root that is set, longest folder first."""
    found = [
        (f"${n}", Path(os.environ[n]).expanduser().resolve()) for n in PORTABLE_ROOTS if os.environ.get(n)
    ]
    if data_root is not None:
        found.insert(0, ("$DFIG_DATA", Path(data_root).expanduser().resolve()))
    return sorted(found, key=lambda kv: -len(str(kv[1])))


def portable(p: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None) -> str:
    """The path as written into every output: no absolute path of this machine.

    Arguments: ``p`` a path (a relative one is taken as already portable and comes back as it is,
    so that ``portable(portable(p)) == portable(p)``); ``data_root`` a
    data folder outside the repository, written as ``$DFIG_DATA``. Returns, first that applies: the
    path relative to the repository root (``work/sample/lnp``); ``$NAME/rest`` under a portable root
    (:data:`PORTABLE_ROOTS`, when set); else the path relative to the repository root with ``..``
    (``../shared/data/faces140k-sample``). Strings already portable (``$NAME/...``) come back as they are.
    :func:`resolve` turns the result back into an absolute path.
    """
    if isinstance(p, str) and p.startswith("$"):
        return p
    if not Path(p).expanduser().is_absolute():
        return Path(p).as_posix()  # already portable; never made relative twice
    q, top = Path(p).expanduser().resolve(), root()
    if q == top or top in q.parents:
        return q.relative_to(top).as_posix() or "."
    for label, folder in _labelled_roots(data_root):
        if q == folder or folder in q.parents:
            rest = q.relative_to(folder).as_posix()
            return label if rest == "." else f"{label}/{rest}"
    try:
        return Path(os.path.relpath(q, top)).as_posix()
    except ValueError:  # another drive (Windows): nothing relative exists
        return q.as_posix()


def resolve(s: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None) -> Path:
    """The absolute path a :func:`portable` string stands for.

    Arguments: ``s`` as written by :func:`portable` (or any path); ``data_root`` the folder
    ``$DFIG_DATA`` stands for (default: the ``DFIG_DATA`` variable). Returns: an absolute path;
    ``$NAME`` falls back to the default folder of that root when its variable is not set.
    Raises ``ValueError`` for an unknown ``$NAME``.
    """
    s = os.fspath(s)
    if s.startswith("$"):
        label, _, rest = s[1:].partition("/")
        base = _root_for_label(label, data_root)
        return (base / rest).resolve() if rest else base
    p = Path(s).expanduser()
    return (p if p.is_absolute() else root() / p).resolve()


def _root_for_label(label: str, data_root: str | os.PathLike[str] | None) -> Path:
    if label == "DFIG_DATA" and data_root is not None:
        return Path(data_root).expanduser().resolve()
    if os.environ.get(label):
        return Path(os.environ[label]).expanduser().resolve()
    defaults = {
        "DFIG_SAMPLE_DATA": sample_data_dir,
        "DFIG_WORK": lambda: work_dir("_").parent,
        "DFIG_REPORTS": lambda: reports_dir("_").parent,
        "DFIG_WEIGHTS": weights_dir,
    }
    if label not in defaults:
        raise ValueError(f"{label}: unknown root in a portable path; set the environment variable {label}")
    return defaults[label]()


#: an absolute POSIX path inside free text: after a start, a space, a quote, "(", "=", ",", ":" or "["
_ABSOLUTE_IN_TEXT = re.compile(
    r"""(?:^|(?<=[\s"'(=,:\[]))/(?:[A-Za-z0-9_.~-]+/)*[A-Za-z0-9_.~-]*[A-Za-z0-9_~-]/?""", re.M
)


def portable_text(text: str) -> str:
    """``text`` with every absolute path of this machine it names written as :func:`portable` does.

    Arguments: free text (an error reason, a caption, a notebook output). Returns: the text with the
    set portable roots, the repository root and the home folder replaced (``$DFIG_WORK/``, ``./``,
    ``~/``), so that ``expected x.pth in /repo/pretrained/`` reads ``expected x.pth in ./pretrained/``;
    any other absolute path becomes relative to the repository root (``../data/140k``). URLs are kept.
    """
    subs = [(str(folder), label) for label, folder in _labelled_roots()]
    subs += [(str(root()), "."), (str(Path.home()), "~")]
    for folder, label in sorted(subs, key=lambda kv: -len(kv[0])):
        if folder not in ("", "/"):
            text = re.sub(
                re.escape(folder) + r"(?![A-Za-z0-9_~-]|\.[A-Za-z0-9_])", lambda _m, s=label: s, text
            )
    return _ABSOLUTE_IN_TEXT.sub(lambda m: portable(m[0]) + ("/" if m[0].endswith("/") else ""), text)


def portable_obj(obj: Any) -> Any:
    """A copy of a JSON-like object with every path made :func:`portable`.

    Arguments: dicts, lists, tuples, strings, ``Path`` objects, other scalars. Returns: the same
    structure; a ``Path`` or an absolute path string becomes :func:`portable`, other strings go
    through :func:`portable_text`.
    """
    if isinstance(obj, dict):
        return {k: portable_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable_obj(v) for v in obj]
    if isinstance(obj, Path) or (isinstance(obj, str) and os.path.isabs(obj) and "\n" not in obj):
        return portable(obj)
    if isinstance(obj, str):
        return portable_text(obj)
    return obj


def roots() -> dict[str, str]:
    """The data roots recorded once per manifest: ``{"repository": ".", "$DFIG_WORK": "<portable>"...}``.

    Returns: for each portable root that is set, where it lies, relative to the repository root when
    that is possible (``../shared/data/faces140k-sample``), else the label alone.
    """
    out = {"repository": "."}
    for label, folder in _labelled_roots():
        rel_ = os.path.relpath(folder, root()) if folder.drive == root().drive else label
        out[label] = Path(rel_).as_posix()
    out.setdefault("sample_data", portable(sample_data_dir()))
    return out


def rel(p: str | os.PathLike[str]) -> str:
    """Alias of :func:`portable` (kept for older callers)."""
    return portable(p)


__all__ = [
    "PORTABLE_ROOTS",
    "checkpoints_dir",
    "current_profile",
    "executed_dir",
    "figures_dir",
    "metrics_dir",
    "notebooks_dir",
    "paper_dir",
    "paper_pdf",
    "portable",
    "portable_obj",
    "portable_text",
    "predictions_dir",
    "profiles_dir",
    "rel",
    "reports_dir",
    "resolve",
    "root",
    "roots",
    "sample_data_dir",
    "tables_dir",
    "weights_dir",
    "work_dir",
]
