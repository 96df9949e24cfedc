"""Listing a file tree and mirroring its paths (no labels, no splits): the image suffixes,
:func:`list_images`, :func:`mirror_path`, :func:`tree_relpath`. Below both :mod:`dfig.tree` (the
tree-stage runner) and :mod:`dfig.data.layout` (the dataset layout, which re-exports these names)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

IMAGE_EXTS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LNP_EXTS: tuple[str, ...] = (".png", ".npy")


def list_images(
    folder: str | os.PathLike[str],
    exts: Iterable[str] = IMAGE_EXTS,
    skip: Iterable[str | os.PathLike[str]] = (),
) -> list[Path]:
    """All files under ``folder`` (recursive) whose suffix is in ``exts``, sorted; hidden files skipped.

    Arguments: ``folder`` the tree to list; ``exts`` the suffixes to keep (any case); ``skip`` folders
    never entered (a stage's own output trees): a link that reaches one is listed instead, like a loop.
    Returns the paths where the files SIT in the tree: a link is listed under its own name, never as
    its target, so labels and output paths come from its place. Links to folders are followed, except a
    link back to a folder that contains it (a loop): that link is listed, whatever its name, so that
    the bad-file policy names it, as it names dangling links and file link loops (listed as files).
    Directories that carry an image suffix (``x.png/``) are listed too, for the same reason.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    exts = tuple(e.lower() for e in exts)
    out = []
    chains = {os.fspath(folder): (os.path.realpath(folder),)}  # real folders from the top down to here
    avoid = tuple(os.path.realpath(d) for d in skip)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        chain = chains.pop(dirpath, (os.path.realpath(dirpath),))
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = os.path.join(dirpath, d)
            real = os.path.realpath(sub)
            if real in chain or any(real == a or real.startswith(a + os.sep) for a in avoid):  # a loop
                out.append(Path(sub))
                continue
            chains[sub] = (*chain, real)
            keep.append(d)
            if Path(d).suffix.lower() in exts:
                out.append(Path(sub))
        dirnames[:] = keep
        out += [
            Path(dirpath) / n for n in filenames if not n.startswith(".") and Path(n).suffix.lower() in exts
        ]
    return sorted(set(out))


def mirror_path(
    path: str | os.PathLike[str],
    in_root: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    suffix: str | None = None,
) -> Path:
    """The path of ``path`` relative to ``in_root``, placed under ``out_root`` (optionally new suffix).

    Arguments: ``path`` a file under ``in_root``; ``suffix`` replaces its suffix when given.
    Returns the mirrored path. Links are never resolved: a link in ``train/fake`` that points at
    ``test/real/x.png`` maps to ``train/fake/x...`` (where it sits), not to its target.
    """
    out = Path(out_root) / tree_relpath(path, in_root)
    return out.with_suffix(suffix) if suffix else out


def tree_relpath(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """``path`` relative to ``root`` by where it sits; the file itself is never resolved.

    Arguments: ``path`` a file (or link) under ``root``. Returns the relative path. The comparison is
    lexical first; when ``root`` (or a folder above the file) was given through a link, the real folders
    are compared, keeping the file's own name. Raises ``ValueError`` when ``path`` is not under ``root``.
    """
    p, r = os.path.abspath(path), os.path.abspath(root)
    if p.startswith(r.rstrip(os.sep) + os.sep):  # the usual case, as cheap as it gets (string ops)
        return Path(p[len(r.rstrip(os.sep)) + 1 :])
    real_root = Path(os.path.realpath(root))
    for cand in (Path(p), Path(os.path.realpath(os.path.dirname(p))) / os.path.basename(p)):
        try:
            return cand.relative_to(real_root)
        except ValueError:
            pass
    raise ValueError(f"{path} does not lie under {root}")


__all__ = ["IMAGE_EXTS", "LNP_EXTS", "list_images", "mirror_path", "tree_relpath"]
