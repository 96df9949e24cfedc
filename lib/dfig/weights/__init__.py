"""Registry of the official checkpoints: file name, URL, size, hash, where to put it, how to check it.

Modules: :mod:`~dfig.weights.registry` (the files, their errors), :mod:`~dfig.weights.checks` (find
and check: :func:`locate`, :func:`verify`, :func:`status`), :mod:`~dfig.weights.markers` (stand-in
markers, :func:`describe`), :mod:`~dfig.weights.checkpoint` (the one checkpoint reader
:func:`load_checkpoint` and :class:`CheckpointMismatchError`), :mod:`~dfig.weights.cli` (the table).

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

from dfig.weights.checkpoint import (
    WRAPPER_KEYS,
    CheckpointMismatchError,
    CheckpointReadError,
    check_state_dict,
    key_list,
    load_checkpoint,
    read_checkpoint,
    state_dict_differences,
    unwrap_state_dict,
)
from dfig.weights.checks import locate, sha256_file, status, verify, weights_record
from dfig.weights.cli import main
from dfig.weights.markers import describe, standin_info, standin_marker_path
from dfig.weights.registry import (
    HASHES_FILE,
    STANDIN_ATTR,
    STANDIN_LABEL,
    STANDIN_SUFFIX,
    VERIFY_MODES,
    WEIGHTS,
    Alternate,
    MissingWeightsError,
    StandinWeightsError,
    WeightSpec,
    WrongWeightsError,
    download_hint,
    expected_path,
    spec,
    weights_folder,
)

__all__ = [
    "HASHES_FILE",
    "STANDIN_ATTR",
    "STANDIN_LABEL",
    "STANDIN_SUFFIX",
    "VERIFY_MODES",
    "WEIGHTS",
    "WRAPPER_KEYS",
    "Alternate",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "MissingWeightsError",
    "StandinWeightsError",
    "WeightSpec",
    "WrongWeightsError",
    "check_state_dict",
    "describe",
    "download_hint",
    "expected_path",
    "key_list",
    "load_checkpoint",
    "locate",
    "main",
    "read_checkpoint",
    "sha256_file",
    "spec",
    "standin_info",
    "standin_marker_path",
    "state_dict_differences",
    "status",
    "unwrap_state_dict",
    "verify",
    "weights_folder",
    "weights_record",
]
