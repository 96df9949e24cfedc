"""Command line of the peers: ``python -m dfig.peers --name NAME --dataroot LNPROOT [--out DIR]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from dfig import paths
from dfig.stages.peers.features import DEFAULT_CROP
from dfig.stages.peers.models import PEERS
from dfig.stages.peers.run import run_peer


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m dfig.peers``."""
    ap = argparse.ArgumentParser(
        prog="python -m dfig.peers",
        description="Classical peers beside DFIG: cheap, well-known detectors on the same splits.",
    )
    ap.add_argument("--name", required=True, choices=list(PEERS), help="which peer")
    ap.add_argument("--dataroot", required=True, help="feature tree {train,val,test}/{real,fake}/* (LNPs)")
    ap.add_argument("--out", default=None, help="reports folder (default: reports/<profile>)")
    ap.add_argument("--classes", default="", help="as dfig.stages.train --classes")
    ap.add_argument(
        "--crop", type=int, default=DEFAULT_CROP, help="central region kept (px; 0 = whole image)"
    )
    ap.add_argument("--bins", type=int, default=None, help="spectrum bins (default 32)")
    ap.add_argument("--highpass", action="store_true", help="Gaussian high-pass first (raw image trees)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n_boot", type=int, default=1000)
    ap.add_argument("--policy", choices=("skip", "strict"), default="skip", help="bad input files")
    ap.add_argument("--no_progress", action="store_true")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.peers --name logreg_spec2d --dataroot LNPROOT [--out DIR]``; user errors exit 2."""
    from dfig.clierrors import USER_ERRORS, check_writable, fail, output_error

    a = build_parser().parse_args(argv)
    kw: dict[str, Any] = {"crop": a.crop or None, "highpass": a.highpass}
    if a.bins is not None and a.name != "hgb_stats":
        kw["bins"] = a.bins
    try:
        if a.out is not None:
            check_writable(a.out, "--out")
        res = run_peer(
            a.name, a.dataroot, a.out, a.classes, a.seed, a.n_boot, a.policy, not a.no_progress, **kw
        )
    except USER_ERRORS as e:
        return fail(output_error(e, a.out or paths.reports_dir(), "--out"))
    for split in ("val", "test"):
        m = res[f"{split}_metrics"]
        print(
            f"{res['name']} {split}: AUC {m['roc_auc']:.4f} [{m['roc_auc_lo']:.4f}, {m['roc_auc_hi']:.4f}], "
            f"AP {m['ap']:.4f}, acc {m['acc']:.4f}, n {m['n']}"
        )
    print(f"params {res['params']}, threshold {res['threshold']:.4f}, skipped files {res['skipped_files']}")
    return 0


__all__ = ["build_parser", "main"]
