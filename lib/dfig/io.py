"""Atomic writes and the savers every notebook uses for figures, tables and metrics.

Every saved figure, table and metrics file records its provenance (the notebook and parameters that
made it) in ``reports/provenance.json`` so that each number in the paper can be traced back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dfig import paths

_UMASK = os.umask(0)
os.umask(_UMASK)


#: Every temporary file :func:`atomic_path` makes is named ``.<dest name>.<8 random chars><dest suffix>.part``.
TEMP_SUFFIX = ".part"
_TEMP_NAME = re.compile(r"^\.(?P<dest>.+)\.[a-z0-9_]{8}(?P<ext>\.[^.]*)?\.part$")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it replaces ``dest`` atomically.

    A crash or kill while writing leaves ``dest`` untouched (old content or absent), never truncated.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or dest.suffix + TEMP_SUFFIX
    fd, tmp = tempfile.mkstemp(prefix=f".{temp_key(dest, suffix).name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: bytes :func:`atomic_path` adds around the name it keeps of the destination: ``.`` + ``.`` + 8 random
TEMP_OVERHEAD = 10


def name_max(folder: str | os.PathLike[str]) -> int:
    """The longest file name (in bytes) the file system of ``folder`` (or its nearest existing parent) allows."""
    p = Path(folder)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(os.pathconf(p, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def temp_key(dest: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """The destination name a temporary file of :func:`atomic_path` carries (what :func:`temp_target` returns).

    Arguments: ``dest`` the final file; ``suffix`` the temporary file's suffix (default ``<dest suffix>.part``).
    Returns ``dest`` itself when ``.<name>.<8 chars><suffix>`` fits the file system's name limit, else
    ``dest`` with its stem cut (whole UTF-8 characters) and ``~<8 hex of the full name's hash>`` added, so
    that a long file name can still be written atomically (issue 22).
    """
    dest = Path(dest)
    suffix = dest.suffix + TEMP_SUFFIX if suffix is None else suffix
    room = name_max(dest.parent) - TEMP_OVERHEAD - len(suffix.encode())
    if len(dest.name.encode()) <= room:
        return dest
    tag = "~" + hashlib.sha1(dest.name.encode()).hexdigest()[:8]
    keep = room - len(tag.encode()) - len(dest.suffix.encode())
    stem = dest.stem.encode()[: max(keep, 1)].decode("utf-8", errors="ignore")
    return dest.with_name(stem + tag + dest.suffix)


def temp_target(path: str | os.PathLike[str]) -> Path | None:
    """The file that a temporary file of :func:`atomic_path` was to become, or ``None``.

    Arguments: ``path`` any file. Returns ``<folder>/<dest name>`` when the name is exactly as
    :func:`atomic_path` names its temporary files (default suffix), else ``None`` (not ours). For a
    destination name too long to carry whole, that is its :func:`temp_key`.
    """
    p = Path(path)
    m = _TEMP_NAME.match(p.name)
    if not m or (m["ext"] or "") != Path(m["dest"]).suffix:
        return None
    return p.with_name(m["dest"])


def remove_orphan_temps(
    root: str | os.PathLike[str], owned: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Delete the temporary files a killed process (kill -9 mid-write) left under ``root``.

    Arguments: ``root`` an output tree; ``owned(dest)`` limits the removal to temporary files whose
    destination it accepts (a shard removes only those of its own outputs: another shard may be writing
    one right now); ``None`` removes all. Only files named as :func:`atomic_path` names them
    (:func:`temp_target`) are touched; links are not followed. Returns the removed paths.
    """
    removed: list[Path] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            dest = temp_target(p) if name.endswith(TEMP_SUFFIX) else None
            if dest is not None and (owned is None or owned(dest)):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically (temp file + fsync + rename)."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(dest, text.encode("utf-8"))


def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item") and callable(o.item):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


#: the key under which :func:`strict_json` lists each undefined (NaN) or infinite number and why
UNDEFINED_KEY = "_undefined"


def _why_undefined(value: float, where: dict[str, Any]) -> str:
    """Why a metric is not a number, from the class counts beside it (``n_real``/``n_fake``)."""
    if not math.isnan(value):
        return f"infinite ({value})"
    for cls in ("real", "fake"):
        if where.get(f"n_{cls}") == 0:
            return f"undefined: the split has no {cls} images (one class)"
    return "undefined (not a number)"


def strict_json(obj: Any) -> Any:
    """``obj`` as strict JSON: every NaN or infinite float becomes ``null``, and a top-level mapping gets
    :data:`UNDEFINED_KEY` = ``{"dotted.key": reason}`` for each (strict readers reject bare ``NaN``).

    Arguments: ``obj`` JSON-like (already through ``_jsonable``). Returns: the cleaned copy.
    """
    found: dict[str, str] = {}

    def walk(o: Any, key: str, parent: dict[str, Any]) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            found[key] = _why_undefined(o, parent)
            return None
        if isinstance(o, dict):
            return {k: walk(v, f"{key}.{k}" if key else str(k), o) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, f"{key}[{i}]", parent) for i, v in enumerate(o)]
        return o

    out = walk(obj, "", {})
    if found and isinstance(out, dict):
        out[UNDEFINED_KEY] = {**(out.get(UNDEFINED_KEY) or {}), **found}
    return out


def save_json(obj: Any, dest: str | os.PathLike[str], *, portable: bool = False) -> Path:
    """Write ``obj`` as indented, strict JSON (:func:`strict_json`: ``null`` with a reason, never ``NaN``), atomically.

    Arguments: ``obj`` JSON-like; ``dest`` the file; ``portable=True`` (every report output) writes
    every path as :func:`dfig.paths.portable` does, so no absolute path of this machine is written.
    Returns: ``dest``.
    """
    obj = strict_json(json.loads(json.dumps(obj, default=_jsonable)))
    if portable:
        obj = paths.portable_obj(obj)
    return atomic_write_text(dest, json.dumps(obj, indent=2, allow_nan=False, sort_keys=False) + "\n")


def load_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# provenance


def record_provenance(output: str | os.PathLike[str], source: Mapping[str, Any] | None = None) -> None:
    """Record in ``reports/provenance.json`` which notebook and parameters produced ``output``.

    ``source`` defaults to the environment set by ``run_all.py`` (``DFIG_NOTEBOOK``,
    ``DFIG_PROFILE``, ``DFIG_PARAMS``); in an interactive session it says so.
    """
    src = dict(source) if source is not None else current_source()
    key = paths.portable(output)
    prov_file = paths.reports_dir() / "provenance.json"
    prov_file.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(prov_file.parent):  # runs side by side (run_all.py --jobs) share the file
        prov = load_json(prov_file) if prov_file.exists() else {}
        prov[key] = {**src, "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        save_json(dict(sorted(prov.items())), prov_file, portable=True)


def current_source() -> dict[str, Any]:
    """The notebook, profile and parameters of the current run (set by run_all.py), or 'interactive'."""
    params = os.environ.get("DFIG_PARAMS")
    return {
        "notebook": os.environ.get("DFIG_NOTEBOOK", "interactive"),
        "profile": os.environ.get("DFIG_PROFILE", "interactive"),
        "parameters": json.loads(params) if params else None,
    }


def save_metrics(obj: Mapping[str, Any], name: str, params: Mapping[str, Any] | None = None) -> Path:
    """Save a metrics dict as ``reports/metrics/<name>.json`` with its provenance."""
    dest = paths.metrics_dir() / f"{name}.json"
    save_json(
        {**obj, "_provenance": {**current_source(), **({"parameters": dict(params)} if params else {})}},
        dest,
        portable=True,
    )
    record_provenance(dest)
    return dest


def save_table(df: Any, name: str, caption: str = "", floatfmt: str = ".4g") -> dict[str, Path]:
    """Save a pandas DataFrame as ``reports/tables/<name>.{csv,md}`` and record provenance."""
    out = paths.tables_dir()
    csv_p, md_p = out / f"{name}.csv", out / f"{name}.md"
    atomic_write_text(csv_p, paths.portable_text(df.to_csv(index=False)))
    md = paths.portable_text(df.to_markdown(index=False, floatfmt=floatfmt))
    atomic_write_text(md_p, (f"{paths.portable_text(caption)}\n\n" if caption else "") + md + "\n")
    for p in (csv_p, md_p):
        record_provenance(p)
    return {"csv": csv_p, "md": md_p}


#: the columns of a predictions CSV that hold file paths
PATH_COLUMNS = ("path",)


def save_predictions_csv(df: Any, dest: str | os.PathLike[str]) -> Path:
    """Write a predictions table as CSV, atomically, with its path column :func:`dfig.paths.portable`.

    Arguments: ``df`` a DataFrame (``path``, ``label``, ``p_fake``...); ``dest`` the file.
    Returns: ``dest``. Readers get the absolute path back with :func:`dfig.paths.resolve`.
    """
    df = df.copy()
    for col in PATH_COLUMNS:
        if col in df.columns:
            df[col] = [paths.portable(p) for p in df[col]]
    return atomic_write_text(dest, df.to_csv(index=False))


def copy_predictions_csv(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy a predictions CSV (e.g. a run's ``predictions_test.csv``) into the reports, paths portable.

    Arguments: ``src`` the CSV to read; ``dest`` where to write it. Returns: ``dest``.
    """
    import pandas as pd

    return save_predictions_csv(pd.read_csv(src), dest)


def save_figure(fig: Any, name: str, dpi: int = 200) -> dict[str, Path]:
    """Save a matplotlib figure as ``reports/figures/<name>.{pdf,png}`` and record provenance."""
    out = paths.figures_dir()
    res = {}
    for ext in ("pdf", "png"):
        dest = out / f"{name}.{ext}"
        with atomic_path(dest, suffix=f".part.{ext}") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=ext)
        record_provenance(dest)
        res[ext] = dest
    return res


# ---------------------------------------------------------------------------------------------
# stage metadata: every dataset-wide stage writes one next to its outputs

STAGE_META = "dfig_stage.json"


def write_stage_meta(output_root: str | os.PathLike[str], meta: Mapping[str, Any]) -> Path:
    """Write ``<output_root>/dfig_stage.json``: what made this tree (method, weights, fallbacks, params).

    Later stages read it (:func:`read_stage_meta`) so that the feature pipeline travels with the data
    and into checkpoints and reports.
    """
    return save_json(portable_dirs(dict(meta)), Path(output_root) / STAGE_META)


def portable_dirs(meta: Any) -> Any:
    """A stage record with every folder (keys ``*_dir``, ``*_root``, ``dataroot``) :func:`dfig.paths.portable`.

    Arguments: a stage record (nested records included). Returns: the copy; relative folders are kept
    (already portable), file lists (``failed``) keep their paths as the stage wrote them. Readers resolve a folder with :func:`dfig.paths.resolve`.
    """
    if isinstance(meta, list):
        return [portable_dirs(v) for v in meta]
    if not isinstance(meta, dict):
        return meta
    return {
        k: paths.portable(v) if _is_dir_key(k) and _is_absolute(v) else portable_dirs(v)
        for k, v in meta.items()
    }


def _is_absolute(v: Any) -> bool:
    """An absolute path (a relative one is already portable: it is not made relative twice)."""
    return isinstance(v, str | Path) and bool(str(v)) and os.path.isabs(v)


def _is_dir_key(key: str) -> bool:
    return key.endswith(("_dir", "_root")) or key == "dataroot"


def read_stage_meta(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``dfig_stage.json`` of a tree made by a dfig stage; ``{}`` for a raw input tree."""
    p = Path(root) / STAGE_META
    return load_json(p) if p.exists() else {}


@contextlib.contextmanager
def file_lock(lock: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (a file, created with its folder, or an existing folder).

    Arguments: ``lock`` the lock file. Used where processes running at the same time (shards, or runs
    started together by ``run_all.py --jobs``) read and rewrite one shared file. Where ``fcntl`` is
    missing (not POSIX) it does not lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    # a folder is locked through its own descriptor: no lock file appears in it
    fd = os.open(lock, os.O_RDONLY) if Path(lock).is_dir() else os.open(lock, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def stage_meta_lock(root: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock (``<root>/.dfig_stage.lock``) while a shard reads and rewrites the record.

    Arguments: ``root`` the output tree. Shards of one stage share one ``dfig_stage.json``; without the
    lock two shards finishing together could each write a record missing the other's failures.
    """
    with file_lock(Path(root) / ".dfig_stage.lock"):
        yield


def update_stage_meta(
    root: str | os.PathLike[str], update: Callable[[dict[str, Any]], Mapping[str, Any]]
) -> dict[str, Any]:
    """Read ``dfig_stage.json``, apply ``update(old) -> new`` and write it back, under :func:`stage_meta_lock`.

    Arguments: ``root`` the output tree; ``update`` gets the current record (``{}`` if none).
    Returns the record written.
    """
    with stage_meta_lock(root):
        new = dict(update(read_stage_meta(root)))
        write_stage_meta(root, new)
    return new


def predictions_frame(samples: Sequence[Any], y: Any, p: Any, threshold: float = 0.5) -> Any:
    """Per-image predictions: path, label, p_fake, pred (``p_fake > threshold``, as dfig.core.metrics)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "path": [str(s.path) for s in samples],
            "label": y.astype(int),
            "p_fake": p.astype(float),
            "pred": (p > threshold).astype(int),
        }
    )


__all__ = [
    "predictions_frame",
    "PATH_COLUMNS",
    "STAGE_META",
    "TEMP_OVERHEAD",
    "TEMP_SUFFIX",
    "UNDEFINED_KEY",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "copy_predictions_csv",
    "current_source",
    "load_json",
    "name_max",
    "portable_dirs",
    "read_stage_meta",
    "file_lock",
    "record_provenance",
    "remove_orphan_temps",
    "save_figure",
    "save_json",
    "save_metrics",
    "save_predictions_csv",
    "save_table",
    "strict_json",
    "stage_meta_lock",
    "temp_key",
    "temp_target",
    "update_stage_meta",
    "write_stage_meta",
]
