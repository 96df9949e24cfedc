"""Plan a per-file stage over a dataset tree: mirror paths, resume, shard.

Used by segmentation and LNP extraction. An output that exists is complete (every stage writes
atomically), so a rerun skips it. ``shard=(k, n)`` takes every n-th input starting at k of the sorted
list, so n processes or machines split a dataset without overlap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dfig.data.layout import IMAGE_EXTS, list_images, mirror_path


@dataclass
class TreePlan:
    """``todo``: (input, output) pairs to do; ``existing``: outputs already complete."""

    todo: list[tuple[Path, Path]] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 0 <= K < N; ``None`` -> ``(0, 1)``."""
    if text is None:
        return (0, 1)
    if isinstance(text, tuple):
        k, n = text
    else:
        try:
            k, n = (int(x) for x in str(text).split("/"))
        except ValueError as e:
            raise ValueError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from e
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"--shard K/N needs 0 <= K < N, got {k}/{n}")
    return (k, n)


def plan_tree(input_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str], out_suffix: str,
              exts: Iterable[str] = IMAGE_EXTS, shard: tuple[int, int] = (0, 1),
              overwrite: bool = False) -> TreePlan:
    """Pair each input file with its mirrored output (same relative path, ``out_suffix``).

    Refuses an output folder inside the input folder (nothing is ever written into the input tree).
    """
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if out == inp or inp in out.parents:
        raise ValueError(f"output folder {out} lies inside the input folder {inp}: choose another one")
    k, n = parse_shard(shard)
    files = list_images(inp, exts)[k::n]
    plan = TreePlan()
    for f in files:
        dest = mirror_path(f, inp, out, out_suffix)
        if dest.exists() and not overwrite:
            plan.existing.append(dest)
        else:
            plan.todo.append((f, dest))
    return plan
