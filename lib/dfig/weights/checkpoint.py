"""The one checkpoint reader: ``torch.load`` (``weights_only`` where the format allows), unwrapping, checks.

Every weights file the library reads (ImageNet backbones, CycleISP, detector checkpoints, stand-in
markers) goes through :func:`read_checkpoint`; state dicts come out of :func:`load_checkpoint`
(``state_dict``/``model`` wrappers and a ``module.`` prefix removed); :func:`check_state_dict`
compares one with a model and raises the one :class:`CheckpointMismatchError`, naming the file and
listing the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfig.weights.registry import WrongWeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: wrapper keys unwrapped (outermost first) when looking for the tensors of a checkpoint
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model")
_MODULE = "module."
_LIST = 12


class CheckpointMismatchError(WrongWeightsError):
    """A checkpoint that does not fit what it is loaded into (other keys, shapes, backbone or mode)."""


class CheckpointReadError(CheckpointMismatchError):
    """A file that cannot be read as a checkpoint at all (truncated, corrupt, foreign pickled objects)."""


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: Any = "cpu",
    trusted: bool = False,
    mmap: bool = False,
) -> Any:
    """What a checkpoint file holds, read with ``torch.load(weights_only=not trusted)``.

    Arguments: ``path``; ``map_location``; ``trusted`` (allow arbitrary pickled objects: only for
    files you made yourself); ``mmap`` (memory-map the file). Returns: the loaded object.
    Raises :class:`CheckpointReadError` naming the file (``FileNotFoundError`` if it is absent).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as e:
        raise CheckpointReadError(
            f"{p}: holds Python objects beyond tensors and plain containers, or is not a checkpoint; "
            f"if you made this file yourself, load it with trusted=True ({_short(e)})"
        ) from e
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, ImportError, KeyError) as e:
        raise CheckpointReadError(
            f"{p}: cannot be read as a PyTorch checkpoint (truncated or corrupt: {_short(e)}). "
            "Copy or download it again; `python -m dfig.weights` says from where."
        ) from e


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"


def unwrap_state_dict(obj: Any, path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, Any]:
    """The tensors of a loaded checkpoint: ``obj[key]``, else unwrapped from ``state_dict``/``model``.

    Arguments: ``obj`` (what :func:`read_checkpoint` returned), ``path`` (for messages), ``key`` (take
    this entry instead of guessing). Returns: ``{name: tensor}`` without a ``module.`` prefix (entries
    that are not tensors, e.g. ``num_batches_tracked`` ints of old files, are dropped).
    Raises :class:`CheckpointMismatchError` when no state dict is found.
    """
    import torch

    if key is not None:
        if not isinstance(obj, Mapping) or not isinstance(obj.get(key), Mapping):
            raise CheckpointMismatchError(f"{path}: no state dict under the key {key!r}")
        obj = obj[key]
    while key is None and isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointMismatchError(f"{path}: expected a state dict, found {type(obj).__name__}")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointMismatchError(f"{path}: not a state dict of tensors (no tensor in it)")
    if all(k.startswith(_MODULE) for k in sd):
        sd = {k[len(_MODULE) :]: v for k, v in sd.items()}
    return sd


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: Any = "cpu", key: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (``weights_only=True``; ``state_dict``/``model``/``module.`` unwrapped).

    Arguments: ``path``; ``map_location``; ``key`` (the entry holding the state dict, else found by
    :func:`unwrap_state_dict`). Returns: ``{name: tensor}``. Raises ``FileNotFoundError``,
    :class:`CheckpointReadError` or :class:`CheckpointMismatchError`, each naming the file.
    """
    return unwrap_state_dict(read_checkpoint(path, map_location=map_location), path, key=key)


def key_list(keys: Any, n: int = _LIST) -> str:
    """``keys`` sorted, the first ``n`` joined by commas, plus how many more. Returns: the text."""
    ks = sorted(keys)
    return ", ".join(ks[:n]) + (f" ... (+{len(ks) - n} more)" if len(ks) > n else "")


def state_dict_differences(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, list[str]]:
    """Missing keys, unexpected keys and shape mismatches of ``have`` against ``want``.

    Arguments: two ``{name: tensor}`` mappings. Returns: ``{"missing", "unexpected", "shapes"}`` lists
    (all empty when ``have`` fits).
    """
    return {
        "missing": sorted(set(want) - set(have)),
        "unexpected": sorted(set(have) - set(want)),
        "shapes": sorted(
            f"{k}: file {tuple(have[k].shape)} vs model {tuple(want[k].shape)}"
            for k in set(want) & set(have)
            if tuple(have[k].shape) != tuple(want[k].shape)
        ),
    }


def check_state_dict(
    model: nn.Module, sd: Mapping[str, Any], source: str | os.PathLike[str] = "checkpoint", hint: str = ""
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``sd`` fits ``model`` key for key and shape for shape.

    Arguments: ``model``; ``sd``; ``source`` (the file, named in the message); ``hint`` (appended,
    e.g. what the file looks like). Returns: ``None``.
    """
    want = model.state_dict()
    diff = state_dict_differences(want, sd)
    if not any(diff.values()):
        return
    parts = [
        f"{source} does not match {type(model).__name__} ({len(sd)} keys in the file, {len(want)} expected)"
    ]
    labels = {"missing": "missing keys", "unexpected": "unexpected keys", "shapes": "shape mismatches"}
    for kind, keys in diff.items():
        label = labels[kind]
        if keys:
            more = f"; ... ({len(keys) - _LIST} more)" if len(keys) > _LIST else ""
            parts.append(f"{label} ({len(keys)}): {'; '.join(keys[:_LIST])}{more}")
    raise CheckpointMismatchError(". ".join(parts) + (f". {hint}" if hint else ""))


__all__ = [
    "WRAPPER_KEYS",
    "CheckpointMismatchError",
    "CheckpointReadError",
    "check_state_dict",
    "key_list",
    "load_checkpoint",
    "read_checkpoint",
    "state_dict_differences",
    "unwrap_state_dict",
]
