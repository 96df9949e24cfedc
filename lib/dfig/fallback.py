"""Fallbacks are never silent.

When an official checkpoint is missing, a non-paper run may use a labelled substitute (aligned-face
prior instead of SAM, a classical denoiser instead of CycleISP, random init instead of ImageNet).
:func:`use_fallback` is the one door: it refuses when fallbacks are disallowed (the ``paper`` profile
sets ``DFIG_ALLOW_FALLBACKS=0``), otherwise it emits a :class:`FallbackWarning` and returns a record
that the stage stores in its outputs (``dfig_stage.json``, checkpoints, manifest, paper appendix).
"""

from __future__ import annotations

import os
import warnings
from typing import Any


class FallbackWarning(UserWarning):
    """A stage ran with a substitute for an official component."""


class StandinWarning(FallbackWarning):
    """A stage loaded stand-in (random) weights instead of an official checkpoint."""


class FallbackNotAllowed(RuntimeError):
    """A fallback was needed but the run (e.g. the ``paper`` profile) forbids fallbacks."""


def fallbacks_allowed() -> bool:
    """False when ``DFIG_ALLOW_FALLBACKS`` is ``0``/``false``/``no`` (set by the paper profile)."""
    return os.environ.get("DFIG_ALLOW_FALLBACKS", "1").strip().lower() not in {"0", "false", "no"}


STANDIN_POLICIES: tuple[str, ...] = ("allow", "forbid", "require")


def standin_policy() -> str:
    """Whether stand-in weights are accepted: ``DFIG_STANDIN`` if set, else ``allow`` where fallbacks are.

    Returns ``"allow"`` (official or stand-in), ``"forbid"`` (official only) or ``"require"`` (stand-ins
    only, the ``paper-standin`` profile). An unknown value raises ``ValueError`` naming the variable.
    """
    v = os.environ.get("DFIG_STANDIN", "").strip().lower()
    if not v:
        return "allow" if fallbacks_allowed() else "forbid"
    if v not in STANDIN_POLICIES:
        raise ValueError(f"DFIG_STANDIN={v!r}: expected one of {', '.join(STANDIN_POLICIES)}")
    return v


def use_fallback(
    stage: str, fallback: str, instead_of: str, reason: str, allowed: bool | None = None
) -> dict[str, Any]:
    """Announce (or refuse) a fallback; return the record to store with the stage's outputs."""
    ok = fallbacks_allowed() if allowed is None else allowed
    if not ok:
        raise FallbackNotAllowed(
            f"{stage}: {instead_of} is required here but unavailable ({reason}). "
            f"This run does not allow fallbacks (the '{fallback}' substitute was refused). "
            "Run `python -m dfig.weights` to see what to download and where to put it."
        )
    msg = f"FALLBACK [{stage}]: using {fallback} instead of {instead_of} ({reason})"
    warnings.warn(msg, FallbackWarning, stacklevel=2)
    return {"stage": stage, "fallback": fallback, "instead_of": instead_of, "reason": reason}


__all__ = [
    "FallbackNotAllowed",
    "FallbackWarning",
    "STANDIN_POLICIES",
    "StandinWarning",
    "fallbacks_allowed",
    "standin_policy",
    "use_fallback",
]
