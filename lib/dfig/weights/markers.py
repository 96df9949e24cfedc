"""Stand-in markers: the sidecar ``<file>.standin.json`` and the ``dfig_standin`` attribute inside the file.

:func:`describe` tells a stage what to record about the weights file it loaded (official, stand-in,
or another file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from dfig.weights.checkpoint import read_checkpoint
from dfig.weights.registry import STANDIN_ATTR, STANDIN_LABEL, STANDIN_SUFFIX, WEIGHTS, WrongWeightsError


def standin_marker_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar marker of a weights file: ``<file><STANDIN_SUFFIX>`` next to it."""
    p = Path(path)
    return p.with_name(p.name + STANDIN_SUFFIX)


@lru_cache(maxsize=64)
def _embedded_marker(path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
    """The ``dfig_standin`` attribute of the saved state dict (memory-mapped read; None if absent/unreadable)."""
    try:
        obj = read_checkpoint(path, mmap=True)
    except (OSError, ValueError):  # unreadable: the strict loaders' business, not the marker's
        return None
    inner = obj.get("state_dict") if isinstance(obj, Mapping) else None
    for o in (obj, inner):
        m = getattr(o, STANDIN_ATTR, None)
        if isinstance(m, Mapping):
            return dict(m)
    return None


def standin_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stand-in marker of a weights file, or ``None`` for an unmarked file.

    Reads the sidecar (``<file>.standin.json``) if present, else the marker inside the file.
    Returns the marker dict plus ``marker`` (where it was found). Raises :class:`WrongWeightsError`
    when a sidecar records another size than the file has (the file was replaced).
    """
    p = Path(path)
    st = p.stat()
    side = standin_marker_path(p)
    if side.is_file():
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise WrongWeightsError(
                f"{side}: unreadable stand-in marker ({e}); delete it and rewrite the "
                "stand-ins with `python -m dfig.weights standin --out DIR`"
            ) from e
        if info.get("size") != st.st_size:
            raise WrongWeightsError(
                f"{p}: its stand-in marker {side.name} records {info.get('size')} bytes but the file has "
                f"{st.st_size}: the file was replaced. Delete {side.name} if it is an official file, or "
                "rewrite the stand-ins (`python -m dfig.weights standin --out DIR --overwrite`)."
            )
        return {**info, "marker": side.name}
    emb = _embedded_marker(str(p.resolve()), st.st_size, st.st_mtime_ns)
    return {**emb, "marker": "embedded (no sidecar)"} if emb else None


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a stage records about the weights file it loaded: official, stand-in or another file.

    Returns ``{kind, label, file}`` with ``kind`` = ``"official"`` (a registry file name, unmarked),
    ``"stand-in"`` (marked; label :data:`STANDIN_LABEL`, plus ``weights``, ``seed``, ``marker``) or
    ``"other"`` (any other unmarked file, e.g. a fine-tuned SAM).
    """
    p = Path(path)
    info = standin_info(p)
    if info is not None:
        return {
            "kind": "stand-in",
            "label": STANDIN_LABEL,
            "file": p.name,
            "weights": info.get("weights"),
            "seed": info.get("seed"),
            "marker": info["marker"],
        }
    official = any(p.name in s.filenames for s in WEIGHTS.values())
    return {
        "kind": "official" if official else "other",
        "label": "official weights" if official else "unmarked file (not in the registry)",
        "file": p.name,
    }


__all__ = ["describe", "standin_info", "standin_marker_path"]
