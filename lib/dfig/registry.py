"""Named registries: one error type for an unknown name, whichever registry was asked.

Backbones, fusion modes, spectral scalings, stem initialisations (:mod:`dfig.core.models`), official
weights files and stand-ins (:mod:`dfig.weights`, :mod:`dfig.standin`) all look names up with
:func:`lookup`, so a caller catches :class:`UnknownNameError` (or the ``KeyError``/``ValueError``
it already caught) and the message always lists the valid names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

V = TypeVar("V")


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry; the message lists the valid names.

    A ``KeyError`` (dictionary look-ups) and a ``ValueError`` (bad arguments) at once, so callers
    written for either keep working.
    """

    def __init__(self, what: str, name: Any, valid: Iterable[Any]) -> None:
        self.what = what
        self.name = name
        self.valid = list(valid)
        super().__init__(f"unknown {what} {name!r}; choose one of {', '.join(map(repr, self.valid))}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def lookup(registry: Mapping[Any, V], name: Any, what: str) -> V:
    """``registry[name]``, or :class:`UnknownNameError` naming ``what`` and listing the valid names.

    Arguments: ``registry`` (any mapping), ``name``, ``what`` (e.g. ``"backbone"``).
    Returns: the registry's value for ``name``.
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise UnknownNameError(what, name, registry) from None


def check_name(name: Any, valid: Iterable[Any], what: str) -> Any:
    """``name`` if it is one of ``valid``, else :class:`UnknownNameError`. Returns: ``name``."""
    valid = tuple(valid)
    if isinstance(name, bool) or name not in valid:
        raise UnknownNameError(what, name, valid)
    return name


__all__ = ["UnknownNameError", "check_name", "lookup"]
