"""Finding and checking the official files: size, SHA-256 (recorded once per file), stand-in policy.

How a file is checked (``verify=`` of :func:`locate`): ``"none"`` it exists; ``"size"`` (default) the
byte size matches where known, the full SHA-256 is computed once, compared with the registry and
recorded in ``<folder>/.dfig_hashes.json`` (later runs trust the record while size and mtime are
unchanged); ``"hash"`` always re-hash and compare.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.fallback import StandinWarning, standin_policy
from dfig.registry import check_name
from dfig.weights.markers import describe, standin_info
from dfig.weights.registry import (
    HASHES_FILE,
    STANDIN_LABEL,
    VERIFY_MODES,
    WEIGHTS,
    MissingWeightsError,
    StandinWeightsError,
    WeightSpec,
    WrongWeightsError,
    download_hint,
    spec,
    weights_folder,
)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Full SHA-256 hex digest of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _hash_db_path(folder: Path) -> Path:
    return folder / HASHES_FILE


def _load_hashes(folder: Path) -> dict[str, Any]:
    p = _hash_db_path(folder)
    if not p.exists():
        return {}
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        warnings.warn(f"{p}: unreadable hash record, ignored (delete it to start afresh)", stacklevel=3)
        return {}


def _save_hash(folder: Path, filename: str, entry: dict[str, Any]) -> None:
    from dfig.io import save_json  # local: dfig.io is light, but keep import-time work minimal

    db = _load_hashes(folder)
    db[filename] = entry
    try:
        save_json(dict(sorted(db.items())), _hash_db_path(folder))
    except OSError as e:
        warnings.warn(
            f"could not record the SHA-256 of {folder / filename} in {HASHES_FILE} ({e})", stacklevel=3
        )


def not_a_file(p: Path) -> str:
    """What ``p`` is when it is not a regular file, in words (``"is a folder"``, ``"is a dangling link"``...)."""
    if p.is_symlink() and not p.exists():
        return f"is a dangling link (to {os.readlink(p)})"
    if p.is_dir():
        return "is a folder"
    target = f" (a link to {os.path.realpath(p)})" if p.is_symlink() else ""
    return f"is not a regular file but a device, pipe or socket{target}"


def find_file(s: WeightSpec, path: str | os.PathLike[str] | None) -> Path:
    """The file of spec ``s`` from a file, a folder or (``None``) the default folder.

    Arguments: ``s``, ``path``. Returns: the file's path. Raises :class:`MissingWeightsError`.
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        if os.path.lexists(p) and not p.is_dir():
            raise WrongWeightsError(f"{p} {not_a_file(p)}, not a checkpoint file: {download_hint(s.name)}")
        if not p.is_dir() and p.suffix:  # a file path that does not exist
            raise MissingWeightsError(
                f"{s.name}: checkpoint file {p} not found. {download_hint(s.name, p.parent)}"
            )
        folder = p
    else:
        folder = paths.weights_dir()
    for fn in s.filenames:
        if (folder / fn).is_file():
            return folder / fn
        if os.path.lexists(folder / fn):  # there, but not a file: never called "missing"
            raise WrongWeightsError(
                f"{folder / fn} {not_a_file(folder / fn)}, not a checkpoint file: replace it. {download_hint(s.name, folder)}"
            )
    raise MissingWeightsError(
        f"{s.name}: expected {s.filename} in {folder}/ but it is not there. {download_hint(s.name, folder)}"
        + ("" if path is not None else " Nothing is ever downloaded automatically.")
    )


def check_file(s: WeightSpec, p: Path, mode: str) -> dict[str, Any]:
    """Verify ``p`` for spec ``s`` (``mode`` in :data:`VERIFY_MODES`).

    Arguments: ``s``, ``p``, ``mode``. Returns: the record (name, file, size, expected size, sha256).
    Raises :class:`WrongWeightsError` on a mismatch.
    """
    check_name(mode, VERIFY_MODES, "verify mode")
    st = p.stat()
    exp = s.expected(p.name)
    rec: dict[str, Any] = {
        "name": s.name,
        "file": str(p),
        "size": st.st_size,
        "expected_size": exp.get("size") if exp else None,
        "sha256": None,
    }
    info = standin_info(p)
    if info is not None or standin_policy() == "require":
        return check_standin(s, p, info, mode, rec)
    if mode == "none":
        return rec
    _check_size(s, p, exp, st.st_size)
    old = _load_hashes(p.parent).get(p.name)
    unchanged = bool(old) and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
    if mode == "size" and unchanged:
        rec["sha256"] = old["sha256"]
        return rec
    digest = sha256_file(p)
    rec["sha256"] = digest
    _check_digest(s, p, exp, digest, old)
    _save_hash(
        p.parent,
        p.name,
        {
            "name": s.name,
            "sha256": digest,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "verified_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return rec


def _check_size(s: WeightSpec, p: Path, exp: dict[str, Any], size: int) -> None:
    """The file's size against the registry (its own name's size, else any official size)."""
    known_sizes = {x for x in [s.size, *(a.size for a in s.alternates)] if x}
    exp_size = exp.get("size") if exp else None
    if exp_size is not None and size != exp_size:
        raise WrongWeightsError(
            f"{p}: wrong size for {s.name}: expected {exp_size:,} bytes, found {size:,} bytes "
            f"(an interrupted download or a different file). {download_hint(s.name, p.parent)}"
        )
    if not exp and known_sizes and size not in known_sizes:
        raise WrongWeightsError(
            f"{p}: unrecognised file name for {s.name} and its size {size:,} bytes matches none of the "
            f"official files ({', '.join(f'{x:,}' for x in sorted(known_sizes))} bytes). "
            f"{download_hint(s.name, p.parent)}"
        )


def _check_digest(
    s: WeightSpec, p: Path, exp: dict[str, Any], digest: str, old: dict[str, Any] | None
) -> None:
    """The file's SHA-256 against the registry's full hash or name prefix, and against the record."""
    full = exp.get("sha256") if exp else None
    prefixes = (
        [exp["sha256_prefix"]]
        if exp and exp.get("sha256_prefix")
        else [x for x in [s.sha256_prefix, *(a.sha256_prefix for a in s.alternates)] if x and not exp]
    )
    if full and digest != full:
        raise WrongWeightsError(
            f"{p}: SHA-256 {digest} differs from the official {full} for {s.name}. "
            f"{download_hint(s.name, p.parent)}"
        )
    if prefixes and not any(digest.startswith(x) for x in prefixes):
        raise WrongWeightsError(
            f"{p}: SHA-256 starts {digest[:8]}, expected {' or '.join(prefixes)} (torch.hub convention) for "
            f"{s.name}: a corrupt or different file. {download_hint(s.name, p.parent)}"
        )
    if old and old.get("sha256") and old["sha256"] != digest:
        raise WrongWeightsError(
            f"{p}: SHA-256 {digest} differs from the one recorded on {old.get('verified_utc', '?')} "
            f"({old['sha256']}) in {p.parent / HASHES_FILE}. If you replaced the file on purpose, delete "
            "its entry there."
        )


def check_standin(
    s: WeightSpec, p: Path, info: dict[str, Any] | None, mode: str, rec: dict[str, Any]
) -> dict[str, Any]:
    """Accept or refuse a stand-in (or an unmarked file where stand-ins are required).

    Arguments: the spec, the file, its marker (``None``: unmarked), the verify mode, the record so far.
    Returns: the record with the marker. Raises :class:`StandinWeightsError` per
    :func:`dfig.fallback.standin_policy`.
    """
    policy = standin_policy()
    if info is None:
        raise StandinWeightsError(
            f"{p}: not a stand-in, but this run requires stand-in weights (DFIG_STANDIN=require, e.g. the "
            f"paper-standin profile). Write them with `python -m dfig.weights standin --out {p.parent} "
            f"--only {s.name}`, or point DFIG_WEIGHTS at the stand-in folder."
        )
    if policy == "forbid":
        raise StandinWeightsError(
            f"{p}: is a {STANDIN_LABEL} (marker: {info['marker']}), not the official {s.filename}; this run "
            f"accepts official files only (no fallbacks, e.g. the paper profile). {download_hint(s.name, p.parent)}"
        )
    if info.get("weights") not in (None, s.name):
        raise WrongWeightsError(f"{p}: a stand-in for {info.get('weights')}, not for {s.name}")
    if mode == "hash" and info.get("sha256") and sha256_file(p) != info["sha256"]:
        raise WrongWeightsError(
            f"{p}: SHA-256 differs from the one its stand-in marker records; rewrite the "
            "stand-ins (`python -m dfig.weights standin --out DIR --overwrite`)"
        )
    warnings.warn(
        f"STAND-IN [{s.name}]: {p} holds {STANDIN_LABEL}, not the official {s.filename}",
        StandinWarning,
        stacklevel=3,
    )
    return {**rec, "sha256": info.get("sha256"), "standin": info}


def locate(name: str, path: str | os.PathLike[str] | None = None, verify: str = "size") -> Path:
    """Return the checked path of checkpoint ``name``.

    ``path``: a file (any name), a folder to look in, or ``None`` for :func:`dfig.paths.weights_dir`.
    Raises :class:`MissingWeightsError` (file, folder and URL in the message) or
    :class:`WrongWeightsError` (expected vs actual bytes or hash).
    """
    s = spec(name)
    p = find_file(s, path)
    check_file(s, p, verify)
    return p


def weights_record(name: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What to store in a stage's outputs: registry name, file, size and SHA-256 (checked by size)."""
    s = spec(name)
    p = find_file(s, path)
    rec = check_file(s, p, "size")
    return {
        "weights": s.name,
        "file": p.name,
        "path": str(p),
        "size": rec["size"],
        "sha256": rec["sha256"],
        "provenance": describe(p),
    }


def verify(name: str, path: str | os.PathLike[str] | None = None, full_hash: bool = False) -> dict[str, Any]:
    """Check without raising: ``{exists, path, size, expected_size, size_ok, prefix_ok, sha256, recorded_ok, standin, error}``.

    ``standin``: the file is a marked stand-in (then no official check is made).

    ``size_ok``/``prefix_ok`` are ``None`` where the registry has nothing to compare with (or, for the
    prefix, when no hash was computed: pass ``full_hash=True``).
    """
    s = spec(name)
    out: dict[str, Any] = {
        "name": name,
        "exists": False,
        "path": None,
        "size": None,
        "expected_size": s.size,
        "size_ok": None,
        "prefix_ok": None,
        "sha256": None,
        "recorded_ok": None,
        "standin": False,
        "error": None,
    }
    try:
        p = find_file(s, path)
    except MissingWeightsError as e:
        out["error"] = str(e)
        return out
    except WrongWeightsError as e:  # something is there under the file's name, but not a file
        out.update(error=str(e), not_a_file=True)
        return out
    st = p.stat()
    exp = s.expected(p.name)
    out.update(exists=True, path=str(p), size=st.st_size, expected_size=exp.get("size"))
    try:
        info = standin_info(p)
    except WrongWeightsError as e:
        out["error"] = str(e)
        info = None
    out["standin"] = info is not None
    if info is not None:
        out["sha256"] = info.get("sha256")
        return out
    if exp.get("size") is not None:
        out["size_ok"] = st.st_size == exp["size"]
    old = _load_hashes(p.parent).get(p.name)
    digest = None
    if full_hash:
        digest = sha256_file(p)
    elif old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns:
        digest = old.get("sha256")
    out["sha256"] = digest
    prefix = exp.get("sha256_prefix")
    if digest and prefix:
        out["prefix_ok"] = digest.startswith(prefix)
    if digest and exp.get("sha256"):
        out["prefix_ok"] = digest == exp["sha256"]
    if digest and old and old.get("sha256"):
        out["recorded_ok"] = digest == old["sha256"]
    return out


def status(
    weights_dir: str | os.PathLike[str] | None = None, full_hash: bool = False
) -> list[dict[str, Any]]:
    """One row per registry entry: ``state`` is present / missing / wrong size / wrong hash / unchecked /
    :data:`STANDIN_LABEL`."""
    folder = weights_folder(weights_dir)
    rows = []
    for name, s in WEIGHTS.items():
        v = verify(name, folder, full_hash=full_hash)
        if v.get("not_a_file"):
            state = "not a file"
        elif not v["exists"]:
            state = "missing"
        elif v["standin"]:
            state = STANDIN_LABEL
        elif v["size_ok"] is False:
            state = "wrong size"
        elif v["prefix_ok"] is False or v["recorded_ok"] is False:
            state = "wrong hash"
        elif v["size_ok"] or v["prefix_ok"] or v["recorded_ok"]:
            state = "present"
        else:
            state = "present (unchecked)"
        rows.append(
            {
                "name": name,
                "kind": s.kind,
                "state": state,
                "file": Path(v["path"]).name if v["path"] else s.filename,
                "size": v["size"],
                "expected_size": v["expected_size"],
                "sha256": v["sha256"],
                "where": str(folder / s.filename),
                "url": s.url,
                "used_by": s.used_by,
            }
        )
    return rows


__all__ = [
    "check_file",
    "check_standin",
    "find_file",
    "locate",
    "not_a_file",
    "sha256_file",
    "status",
    "verify",
    "weights_record",
]
