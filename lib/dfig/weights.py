"""Registry of the official checkpoints: file name, URL, size, hash, where to put it, how to check it.

Nothing here downloads anything and nothing runs at import time. The default folder is
:func:`dfig.paths.weights_dir` (``<root>/pretrained``, override with ``DFIG_WEIGHTS``); every function
also takes an explicit folder or file.

How a file is checked (``verify=`` of :func:`locate`):

- ``"none"``: it exists.
- ``"size"`` (default): the byte size matches the registry where the size is known. The first time a
  file passes, its full SHA-256 is computed once (a few seconds for SAM vit_h), compared with the
  registry's full hash or torch.hub-style prefix (``resnet50-19c8e357.pth``: the 8 hex digits are the
  start of the file's SHA-256) where known, and recorded in ``<folder>/.dfig_hashes.json``. Later runs
  trust the record while the file's size and mtime are unchanged, and re-hash and compare otherwise,
  so a silently replaced file is caught.
- ``"hash"``: always re-hash and compare with the registry and the record.

``python -m dfig.weights [--dir D] [--hash]`` prints what is present, missing or wrong, and what to
download to where.

Stand-in weights (``python -m dfig.weights standin --out DIR [--only sam_vit_b,...]``, written by
:mod:`dfig.standin`) are random weights in exactly the official formats and names. Each carries a
marker twice: a sidecar ``<file>.standin.json`` (seed, size, SHA-256) and an attribute
``dfig_standin`` on the saved state dict (survives copying the file alone). A marked file skips the
official size/hash checks and is accepted or refused by :func:`dfig.fallback.standin_policy`
(the ``paper`` profile refuses stand-ins, ``paper-standin`` requires them); :func:`describe` tells a
stage what to record ("stand-in (random weights)").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.fallback import StandinWarning, standin_policy

HASHES_FILE = ".dfig_hashes.json"
VERIFY_MODES: tuple[str, ...] = ("none", "size", "hash")
#: sidecar marker of a stand-in file: ``<file name><STANDIN_SUFFIX>``
STANDIN_SUFFIX = ".standin.json"
#: attribute set on the saved state dict of a stand-in file (the marker inside the file)
STANDIN_ATTR = "dfig_standin"
#: how every stage, the manifest and the paper label a stand-in
STANDIN_LABEL = "stand-in (random weights)"


@dataclass(frozen=True)
class Alternate:
    """Another official file accepted for the same weights (e.g. a newer torchvision release)."""

    filename: str
    url: str
    size: int | None = None
    sha256_prefix: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class WeightSpec:
    """One official checkpoint. ``size`` in bytes; ``None`` where not established."""

    name: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    sha256_prefix: str | None
    kind: str  # "sam" | "cycleisp" | "backbone"
    used_by: str
    notes: str = ""
    alternates: tuple[Alternate, ...] = field(default_factory=tuple)

    @property
    def filenames(self) -> tuple[str, ...]:
        """The preferred file name first, then the accepted alternates."""
        return (self.filename, *(a.filename for a in self.alternates))

    def expected(self, filename: str) -> dict[str, Any]:
        """URL, size, full hash and hash prefix expected for ``filename`` (empty dict if unknown name)."""
        if filename == self.filename:
            return {
                "url": self.url,
                "size": self.size,
                "sha256": self.sha256,
                "sha256_prefix": self.sha256_prefix,
            }
        for a in self.alternates:
            if filename == a.filename:
                return {"url": a.url, "size": a.size, "sha256": None, "sha256_prefix": a.sha256_prefix}
        return {}


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_TV_URL = "https://download.pytorch.org/models/"

WEIGHTS: dict[str, WeightSpec] = {
    "sam_vit_h": WeightSpec(
        "sam_vit_h",
        "sam_vit_h_4b8939.pth",
        _SAM_URL + "sam_vit_h_4b8939.pth",
        2564550879,
        None,
        None,
        "sam",
        "dfig.stages.segment (paper setting: SAM ViT-H)",
        "Segment Anything ViT-H, Meta's public download site (segment-anything README). "
        "Whether the hex part of the name is a hash prefix is not established: checked by size.",
    ),
    "sam_vit_l": WeightSpec(
        "sam_vit_l",
        "sam_vit_l_0b3195.pth",
        _SAM_URL + "sam_vit_l_0b3195.pth",
        1249524607,
        None,
        None,
        "sam",
        "dfig.stages.segment (--model_type vit_l)",
        "Segment Anything ViT-L; checked by size.",
    ),
    "sam_vit_b": WeightSpec(
        "sam_vit_b",
        "sam_vit_b_01ec64.pth",
        _SAM_URL + "sam_vit_b_01ec64.pth",
        375042383,
        None,
        None,
        "sam",
        "dfig.stages.segment (--model_type vit_b; ~10-20 s/image on CPU)",
        "Segment Anything ViT-B; checked by size.",
    ),
    "cycleisp_sidd_rgb": WeightSpec(
        "cycleisp_sidd_rgb",
        "sidd_rgb.pth",
        "https://drive.google.com/file/d/1sraG9JKmp0ieLjntRL7Jj2FXBrPr-YVp/view?usp=sharing",
        None,
        None,
        None,
        "cycleisp",
        "dfig.core.denoise / dfig.stages.lnp (LNP extraction)",
        "CycleISP sRGB denoiser trained on SIDD (Google Drive link 'Denoising sRGB images of SIDD' in "
        "the CycleISP GitHub README, github.com/swz30/CycleISP). About 11 MB; 399 keys under "
        "'state_dict'. Size not established: its SHA-256 is recorded on first use.",
    ),
    "resnet50": WeightSpec(
        "resnet50",
        "resnet50-19c8e357.pth",
        _TV_URL + "resnet50-19c8e357.pth",
        102502400,
        None,
        "19c8e357",
        "backbone",
        "dfig.core.models (ResNet50 backbone; the original project's resnet50.pth)",
        "torchvision ImageNet ResNet50 (V1 release); the 8 hex digits start the file's SHA-256 "
        "(torch.hub convention).",
        (
            Alternate(
                "resnet50-0676ba61.pth",
                _TV_URL + "resnet50-0676ba61.pth",
                None,
                "0676ba61",
                "torchvision IMAGENET1K_V1 re-release",
            ),
            Alternate(
                "resnet50-11ad3fa6.pth",
                _TV_URL + "resnet50-11ad3fa6.pth",
                None,
                "11ad3fa6",
                "torchvision IMAGENET1K_V2 (different training recipe)",
            ),
        ),
    ),
    "resnet34": WeightSpec(
        "resnet34",
        "resnet34-b627a593.pth",
        _TV_URL + "resnet34-b627a593.pth",
        None,
        None,
        "b627a593",
        "backbone",
        "dfig.core.models (ResNet-34 backbone, reported in the paper)",
        "torchvision ImageNet ResNet-34; hash prefix in the name (torch.hub convention).",
        (
            Alternate(
                "resnet34-333f7ec4.pth",
                _TV_URL + "resnet34-333f7ec4.pth",
                None,
                "333f7ec4",
                "older torchvision release",
            ),
        ),
    ),
    "mobilenet_v2": WeightSpec(
        "mobilenet_v2",
        "mobilenet_v2-b0353104.pth",
        _TV_URL + "mobilenet_v2-b0353104.pth",
        None,
        None,
        "b0353104",
        "backbone",
        "dfig.core.models (MobileNetV2 backbone, torchvision layout)",
        "torchvision ImageNet MobileNetV2; hash prefix in the name (torch.hub convention).",
        (
            Alternate(
                "mobilenet_v2-7ebf99e0.pth",
                _TV_URL + "mobilenet_v2-7ebf99e0.pth",
                None,
                "7ebf99e0",
                "torchvision IMAGENET1K_V2",
            ),
        ),
    ),
    "mobilenetv2_c5e733a8": WeightSpec(
        "mobilenetv2_c5e733a8",
        "mobilenetv2-c5e733a8.pth",
        "https://github.com/d-li14/mobilenetv2.pytorch/raw/master/pretrained/mobilenetv2-c5e733a8.pth",
        None,
        None,
        None,
        "backbone",
        "dfig.core.models (MobileNetV2 backbone, the original project's file)",
        "ImageNet MobileNetV2 from d-li14/mobilenetv2.pytorch (features.*, top-level conv.*, classifier); "
        "size not established: its SHA-256 is recorded on first use.",
    ),
}


class MissingWeightsError(FileNotFoundError):
    """An official checkpoint is not where it should be; the message says what to download to where."""


class WrongWeightsError(ValueError):
    """A checkpoint file exists but is not the expected one (size or hash differs)."""


class StandinWeightsError(WrongWeightsError):
    """A stand-in where this run accepts only official files, or an official file where it requires stand-ins."""


# ---------------------------------------------------------------------------------------------
# helpers


def spec(name: str) -> WeightSpec:
    """The registry entry ``name`` (clear error listing the known names)."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(WEIGHTS)}") from None


def _folder(weights_dir: str | os.PathLike[str] | None) -> Path:
    return Path(weights_dir).expanduser() if weights_dir is not None else paths.weights_dir()


def expected_path(name: str, weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the preferred file of ``name`` is looked for."""
    return _folder(weights_dir) / spec(name).filename


def download_hint(name: str, weights_dir: str | os.PathLike[str] | None = None) -> str:
    """One paragraph: which file, from which URL, to which folder."""
    s = spec(name)
    folder = _folder(weights_dir)
    alts = f" (also accepted: {', '.join(a.filename for a in s.alternates)})" if s.alternates else ""
    size = f", {s.size:,} bytes" if s.size else ""
    return (
        f"Download {s.filename}{size} from {s.url} and put it in {folder}/ "
        f"(or set DFIG_WEIGHTS to the folder holding it, or pass the file path){alts}."
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


def _find(s: WeightSpec, path: str | os.PathLike[str] | None) -> Path:
    """Resolve a file path for spec ``s`` from a file, a folder or the default folder."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        if p.exists() and not p.is_dir():
            raise MissingWeightsError(f"{p} is not a regular file. {download_hint(s.name)}")
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
    raise MissingWeightsError(
        f"{s.name}: expected {s.filename} in {folder}/ but it is not there. {download_hint(s.name, folder)}"
        + ("" if path is not None else " Nothing is ever downloaded automatically.")
    )


def _check(s: WeightSpec, p: Path, mode: str) -> dict[str, Any]:
    """Verify ``p`` for spec ``s``; returns the record. Raises WrongWeightsError on a mismatch."""
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {mode!r}")
    st = p.stat()
    exp = s.expected(p.name)
    known_sizes = {x for x in [s.size, *(a.size for a in s.alternates)] if x}
    exp_size = exp.get("size") if exp else None
    rec: dict[str, Any] = {
        "name": s.name,
        "file": str(p),
        "size": st.st_size,
        "expected_size": exp_size,
        "sha256": None,
    }
    info = standin_info(p)
    if info is not None or standin_policy() == "require":
        return _check_standin(s, p, info, mode, rec)
    if mode == "none":
        return rec
    if exp_size is not None and st.st_size != exp_size:
        raise WrongWeightsError(
            f"{p}: wrong size for {s.name}: expected {exp_size:,} bytes, found {st.st_size:,} bytes "
            f"(an interrupted download or a different file). {download_hint(s.name, p.parent)}"
        )
    if not exp and known_sizes and st.st_size not in known_sizes:
        raise WrongWeightsError(
            f"{p}: unrecognised file name for {s.name} and its size {st.st_size:,} bytes matches none of the "
            f"official files ({', '.join(f'{x:,}' for x in sorted(known_sizes))} bytes). "
            f"{download_hint(s.name, p.parent)}"
        )
    db = _load_hashes(p.parent)
    old = db.get(p.name)
    unchanged = bool(old) and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
    if mode == "size" and unchanged:
        rec["sha256"] = old["sha256"]
        return rec
    digest = sha256_file(p)
    rec["sha256"] = digest
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
    _save_hash(
        p.parent,
        p.name,
        {
            "name": s.name,
            "sha256": digest,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "verified_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return rec


# ---------------------------------------------------------------------------------------------
# stand-in markers


def standin_marker_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar marker of a weights file: ``<file><STANDIN_SUFFIX>`` next to it."""
    p = Path(path)
    return p.with_name(p.name + STANDIN_SUFFIX)


@lru_cache(maxsize=64)
def _embedded_marker(path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
    """The ``dfig_standin`` attribute of the saved state dict (memory-mapped read; None if absent/unreadable)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - an unreadable file is the strict loaders' business, not the marker's
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


def _check_standin(
    s: WeightSpec, p: Path, info: dict[str, Any] | None, mode: str, rec: dict[str, Any]
) -> dict[str, Any]:
    """Accept or refuse a stand-in (or an unmarked file where stand-ins are required)."""
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


# ---------------------------------------------------------------------------------------------
# public API


def locate(name: str, path: str | os.PathLike[str] | None = None, verify: str = "size") -> Path:
    """Return the checked path of checkpoint ``name``.

    ``path``: a file (any name), a folder to look in, or ``None`` for :func:`dfig.paths.weights_dir`.
    Raises :class:`MissingWeightsError` (file, folder and URL in the message) or
    :class:`WrongWeightsError` (expected vs actual bytes or hash).
    """
    s = spec(name)
    p = _find(s, path)
    _check(s, p, verify)
    return p


def weights_record(name: str, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What to store in a stage's outputs: registry name, file, size and SHA-256 (checked by size)."""
    s = spec(name)
    p = _find(s, path)
    rec = _check(s, p, "size")
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
        p = _find(s, path)
    except MissingWeightsError as e:
        out["error"] = str(e)
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
    folder = _folder(weights_dir)
    rows = []
    for name, s in WEIGHTS.items():
        v = verify(name, folder, full_hash=full_hash)
        if not v["exists"]:
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


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} B"


def main(argv: list[str] | None = None) -> int:
    """CLI: print which official checkpoints are present, missing or wrong, and what to download.

    ``python -m dfig.weights standin --out DIR [--only a,b] [--seed 0]`` writes stand-in weights instead
    (:func:`dfig.standin.main`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["standin"]:
        from dfig import standin

        return standin.main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m dfig.weights", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=None, help="weights folder (default: pretrained/ or $DFIG_WEIGHTS)")
    ap.add_argument("--hash", action="store_true", help="compute full SHA-256 of every present file")
    args = ap.parse_args(argv)
    folder = _folder(args.dir)
    rows = status(folder, full_hash=args.hash)
    print(f"weights folder: {folder}{'' if folder.is_dir() else '  (does not exist yet)'}")
    w = max(len(r["name"]) for r in rows)
    wf = max(len(r["file"]) for r in rows)
    ws = max(len(r["state"]) for r in rows)
    print(f"{'name':<{w}}  {'kind':<8}  {'state':<{ws}}  {'file':<{wf}}  {'size':>9}  sha256")
    for r in rows:
        sz = _fmt_size(r["size"] if r["size"] is not None else r["expected_size"])
        sha = (r["sha256"] or "")[:16]
        print(f"{r['name']:<{w}}  {r['kind']:<8}  {r['state']:<{ws}}  {r['file']:<{wf}}  {sz:>9}  {sha}")
    todo = [r for r in rows if r["state"] != "present" and not r["state"].startswith("present")]
    if todo:
        print("\nTo get the missing or wrong files (nothing is downloaded automatically):")
        for r in todo:
            found = (
                f" (found {r['size']:,} bytes, expected {r['expected_size']:,})"
                if r["state"] == "wrong size"
                else ""
            )
            print(f"  {r['name']}: {r['state']}{found}\n    {download_hint(r['name'], folder)}")
    if not args.hash and any(r["state"].startswith("present") for r in rows):
        print("\n(--hash re-computes the full SHA-256 of every present file)")
    return 1 if any(r["state"] in ("wrong size", "wrong hash") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "WEIGHTS",
    "WeightSpec",
    "Alternate",
    "MissingWeightsError",
    "WrongWeightsError",
    "HASHES_FILE",
    "VERIFY_MODES",
    "STANDIN_SUFFIX",
    "STANDIN_ATTR",
    "STANDIN_LABEL",
    "StandinWeightsError",
    "standin_marker_path",
    "standin_info",
    "describe",
    "spec",
    "expected_path",
    "download_hint",
    "sha256_file",
    "locate",
    "verify",
    "weights_record",
    "status",
    "main",
]
