"""``python -m dfig.data fetch|check``: download a known collection, check what arrived.

    python -m dfig.data fetch faces140k --out DIR      # Kaggle client + credentials, else the steps (exit 2)
    python -m dfig.data check DIR --expect faces140k   # counts, image kinds, one file in two folders

``check`` accepts the download's top folder (it finds the one ``{train,val|valid,test}`` tree inside)
and exits 0 when nothing is wrong (or only an accepted subset), 1 when it found problems, 2 on a user
error (no such folder, no tree, two trees). ``fetch`` exits 0 when the tree is complete, 2 when it
cannot download here (it prints the steps) or on a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dfig.clierrors import USER_ERRORS, fail
from dfig.data.catalog import COLLECTIONS
from dfig.data.check import SAMPLE_PER_FOLDER, check_tree, format_table
from dfig.data.fetch import FetchUnavailable, fetch
from dfig.data.layout import find_data_root


def build_parser() -> argparse.ArgumentParser:
    """The parser of both subcommands. Returns: the parser."""
    ap = argparse.ArgumentParser(prog="python -m dfig.data", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and unpack a known collection (resumable)")
    f.add_argument("name", choices=sorted(COLLECTIONS), help="the collection")
    f.add_argument("--out", required=True, help="folder to unpack into (created; the archive's own layout)")
    f.add_argument("--archive", help="unpack this already downloaded archive instead of downloading")
    f.add_argument(
        "--command", help="download with this command instead ({slug}, {archive}, {dest} filled in)"
    )
    f.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after unpacking")
    c = sub.add_parser("check", help="counts per split and class, image sizes/formats, duplicates")
    c.add_argument("dir", help="the data tree, or a folder above it (e.g. the download's top folder)")
    c.add_argument("--expect", choices=sorted(COLLECTIONS), help="the collection it must match")
    c.add_argument(
        "--accept-subset", action="store_true", help="fewer files than --expect's is not a problem"
    )
    c.add_argument(
        "--hash-all", action="store_true", help="hash every file whose size recurs (exact, slower)"
    )
    c.add_argument("--sample", type=int, default=SAMPLE_PER_FOLDER, help="files opened and hashed per folder")
    c.add_argument("--json", help="also write the record to this file")
    return ap


def run_check(a: argparse.Namespace) -> int:
    """``check``: print the table; write ``--json``. Returns 0 (no problem), 1 (problems)."""
    root, note = find_data_root(Path(a.dir).expanduser())
    if note:
        print(note)
    rec = check_tree(root, a.expect, a.sample, a.hash_all, a.accept_subset)
    print(format_table(rec, root))
    if a.json:
        from dfig import io

        io.save_json(rec, a.json)
    return 1 if rec["problems"] else 0


def run_fetch(a: argparse.Namespace) -> int:
    """``fetch``: download/unpack, print where the tree is. Returns 0, or 2 with the steps printed."""
    try:
        rec = fetch(a.name, a.out, command=a.command, archive=a.archive, keep_archive=a.keep_archive)
    except FetchUnavailable as e:
        print(str(e), file=sys.stderr)
        return 2
    tree = Path(a.out) / rec["tree"]
    print(json.dumps({k: rec.get(k) for k in ("members", "written", "kept", "archive_deleted")}))
    print(f"data: {tree}\nnext: python -m dfig.data check {a.out} --expect {a.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; user errors are one line with exit code 2."""
    a = build_parser().parse_args(argv)
    try:
        return run_check(a) if a.cmd == "check" else run_fetch(a)
    except (*USER_ERRORS, RuntimeError) as e:
        return fail(e)


__all__ = ["build_parser", "main", "run_check", "run_fetch"]
