"""``python -m dfig.weights [--dir D] [--hash]``: which official files are present, missing or wrong.

``python -m dfig.weights standin --out DIR [--only a,b] [--seed 0]`` writes stand-in weights instead
(dispatched by ``__main__``: the stand-in writer :mod:`dfig.standin` sits above this package). (The table lives here rather than in ``__main__.py`` so that importing :func:`main` from the package
does not import ``__main__``, which ``python -m`` would then run twice.)
"""

from __future__ import annotations

import argparse
import sys

from dfig.weights.checks import status
from dfig.weights.registry import download_hint, weights_folder

#: the first line of ``--help``
DESCRIPTION = (
    "Registry of the official checkpoints: file name, URL, size, hash, where to put it, how to check it."
)


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n:,} B"


def main(argv: list[str] | None = None) -> int:
    """CLI: print which official checkpoints are present, missing or wrong, and what to download.

    (``python -m dfig.weights standin ...`` is :func:`dfig.weights.__main__.main`, which hands it to
    :func:`dfig.standin.main`.)
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(prog="python -m dfig.weights", description=DESCRIPTION)
    ap.add_argument("--dir", default=None, help="weights folder (default: pretrained/ or $DFIG_WEIGHTS)")
    ap.add_argument("--hash", action="store_true", help="compute full SHA-256 of every present file")
    args = ap.parse_args(argv)
    folder = weights_folder(args.dir)
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


__all__ = ["main"]
