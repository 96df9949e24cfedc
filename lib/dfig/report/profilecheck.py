"""Checks of a ``run_all.py`` profile before anything runs: YAML, key types, a safe name, value ranges.

Every error is one line naming the profile file and, where the YAML gives one, the line and the key:
``profile profiles/x.yaml:7: `grid` of run 2 must be a list of mappings, found a mapping``. Value ranges
(``--set epochs=-1``, ``crop_size=0``, ``lr=-1``, ``batch_size=0``) are checked for every run: 04_train's
with :meth:`dfig.stages.train.TrainOptions.validate` (the rules training itself applies), the other
notebooks' numbers with :data:`RANGES`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

#: a profile's ``name:`` becomes reports/<name>/ and work/<name>/: letters, digits, ``_ . -``, no ``..``
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: the type each top-level profile key must have (``runs``/``common``/``params``/``grids`` by shape)
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "description": (str,),
    "base": (str,),
    "common": (dict,),
    "params": (dict,),
    "grids": (dict,),
    "runs": (list,),
    "allow_fallbacks": (bool,),
    "publish_pdf": (bool,),
    "require_cuda": (bool,),
    "default_data": (str,),
    "required_weights": (list,),
    "standin_weights": (str,),
}
#: the values ``standin_weights`` may take
STANDIN_POLICIES = ("allow", "forbid", "require")

#: numeric notebook parameters outside 04_train: (lowest allowed, whether it may equal it); None passes
RANGES: dict[str, tuple[float, bool]] = {
    "batch_size": (1, True),
    "classical_h": (0, False),
    "n_examples": (0, True),
    "n_per_class": (1, True),
    "n_mean": (1, True),
    "n_boot": (1, True),
    "robustness_max_images": (0, True),
}


def yaml_error(e: yaml.YAMLError, source: str) -> str:
    """A YAML syntax error as one line: ``profile <file>:<line>:<column>: <problem>`` (tabs get a hint)."""
    mark = getattr(e, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    problem = " ".join(str(getattr(e, "problem", None) or e).split())
    hint = "; indent with spaces, YAML forbids tabs" if "\\t" in problem or "\t" in problem else ""
    return f"profile {where}: YAML syntax error: {problem}{hint}"


def read_yaml(path: Path, source: str) -> Any:
    """The YAML in ``path``, or a one-line ``SystemExit`` naming the file, line and column of a syntax error."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SystemExit(yaml_error(e, source)) from None


def key_lines(path: Path) -> dict[tuple[Any, ...], int]:
    """``{key path: line}`` of every mapping key and list item in a YAML file (``("runs", 1, "grid")``)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, at: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                out[(*at, k.value)] = k.start_mark.line + 1
                walk(v, (*at, k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                out[(*at, i)] = v.start_mark.line + 1
                walk(v, (*at, i))

    if root is not None:
        walk(root, ())
    return out


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text"}.get(type(v), f"a {type(v).__name__}")


def check_shape(data: dict[str, Any], source: str, path: Path | None) -> None:
    """Check a profile's key types, nested shapes and name; raise a one-line ``SystemExit`` naming the line.

    Arguments: ``data`` the profile as read (before ``base:`` is merged); ``source`` how to name its file;
    ``path`` the file (for line numbers). Returns nothing.
    """
    lines = key_lines(path) if path is not None else {}

    def fail(at: tuple[Any, ...], what: str) -> None:
        line = next((lines[at[:i]] for i in range(len(at), 0, -1) if at[:i] in lines), None)
        where = f"{source}:{line}" if line else source
        raise SystemExit(f"profile {where}: {what} (see profiles/smoke.yaml)")

    for key, want in KEY_TYPES.items():
        if key in data and data[key] is not None and not isinstance(data[key], want):
            fail((key,), f"`{key}` must be {_kind(want[0]())}, found {_kind(data[key])}")
    name = data.get("name")
    if isinstance(name, str) and (not SAFE_NAME.match(name) or ".." in name):
        fail(
            ("name",),
            f"`name: {name}` may hold only letters, digits, '_', '.', '-' (it names reports/<name>/)",
        )
    if data.get("standin_weights") not in (None, *STANDIN_POLICIES):
        fail(("standin_weights",), f"`standin_weights` must be one of {', '.join(STANDIN_POLICIES)}")
    for i, run in enumerate(data.get("runs") or []):
        if isinstance(run, dict):
            check_run(run, ("runs", i), fail)
    for key in ("params", "grids"):
        for nb, v in (data.get(key) or {}).items():
            want = dict if key == "params" else list
            if not isinstance(v, want) or (want is list and not all(isinstance(x, dict) for x in v)):
                shape = "a mapping" if want is dict else "a list of mappings"
                fail((key, nb), f"`{key}: {nb}:` must be {shape}, found {_kind(v)}")


def check_run(run: dict[str, Any], at: tuple[Any, ...], fail: Any) -> None:
    """Check one entry of ``runs:`` (``notebook`` text, ``params`` a mapping, ``grid`` a list of mappings)."""
    n = at[-1] + 1
    if "notebook" in run and not isinstance(run["notebook"], str):
        fail((*at, "notebook"), f"`notebook` of run {n} must be text, found {_kind(run['notebook'])}")
    if "params" in run and not isinstance(run["params"], dict):
        fail((*at, "params"), f"`params` of run {n} must be a mapping, found {_kind(run['params'])}")
    grid = run.get("grid")
    if grid is not None and (not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid)):
        fail(
            (*at, "grid"),
            f"`grid` of run {n} must be a list of mappings (`- {{key: value}}`), found {_kind(grid)}",
        )


def range_error(key: str, value: Any) -> str | None:
    """Why ``value`` is out of :data:`RANGES` for ``key``, or ``None``."""
    if key not in RANGES or value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, inclusive = RANGES[key]
    if value > low or (inclusive and value == low):
        return None
    return f"must be {'>=' if inclusive else '>'} {low:g}"


def train_error(params: dict[str, Any]) -> str | None:
    """Why 04_train's parameters fail :meth:`TrainOptions.validate` (the training's own rules), or ``None``."""
    from dfig.stages.train import TrainOptions

    known = {f.name for f in dataclasses.fields(TrainOptions)}
    kw = {k: v for k, v in params.items() if k in known}
    try:
        TrainOptions(**{**kw, "name": "check", "dataroot": "check"}).validate()
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def check_ranges(runs: list[dict[str, Any]], overrides: dict[str, Any]) -> list[str]:
    """Every out-of-range value of every run, one line each (where it came from, the notebook, the rule).

    Arguments: ``runs`` as ``run_all.expand`` made them (types already checked); ``overrides`` the
    ``--set`` values. Returns the error lines (``[]``: all fine).
    """
    errors: dict[str, None] = {}
    for r in runs:
        params = r["parameters"]
        for k, v in params.items():
            why = range_error(k, v) if r["notebook"] != "04_train" else None
            if why:
                src = "--set" if k in overrides else "profile"
                errors[f"{src} {k}={v!r} ({r['notebook']}): {why}"] = None
        if r["notebook"] == "04_train":
            why = train_error(params)
            if why:
                src = "--set" if any(k in why for k in overrides) else "profile"
                errors[f"{src} ({r['notebook']}): {why}"] = None
    return list(errors)


__all__ = [
    "KEY_TYPES",
    "RANGES",
    "SAFE_NAME",
    "STANDIN_POLICIES",
    "check_ranges",
    "check_run",
    "check_shape",
    "key_lines",
    "range_error",
    "read_yaml",
    "train_error",
    "yaml_error",
]
