"""How long ``python -m dfig.data check`` takes on 140,000 files in the Kaggle layout (a benchmark, not a test).

    python benchmarks/bench_data_check.py [--out DIR] [--n_scale 1.0] [--keep]

Writes a synthetic tree of the 140k collection's size and layout (``real_vs_fake/real-vs-fake/{train,
valid,test}/{real,fake}``, 50,000/10,000/10,000 files per class): tiny files, each one small 256x256
JPEG plus a unique tail of random length (JPEG readers stop at the end-of-image marker, so every file
decodes as 256x256 JPEG, and file sizes vary as real photos' do, which is what the duplicate search
groups by). Then times the check as ``run_all.py`` runs it (a sample per folder) and with
``--hash-all``, printing the load average and CPU time beside each wall time (the machine may be
shared). Real photos are ~25 KB, so reading them (``--hash-all``, the sample's decode) costs more than
here; listing and ``stat`` cost the same. The tree goes to a temporary folder, deleted unless --keep.
"""

from __future__ import annotations

import argparse
import io as pyio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dfig.data.catalog import FACES140K
from dfig.data.check import check_tree, format_table

FOLDER = {"train": "train", "val": "valid", "test": "test"}


def write_tree(top: Path, scale: float) -> tuple[Path, float]:
    """The synthetic 140k-layout tree under ``top``; returns its root and the seconds it took."""
    t0 = time.perf_counter()
    buf = pyio.BytesIO()
    Image.new("RGB", FACES140K.size, (128, 120, 110)).save(buf, format="JPEG", quality=10)
    base = buf.getvalue()
    rng = np.random.default_rng(0)
    root = top / FACES140K.tree
    for split, per in FACES140K.counts.items():
        for cls, n in per.items():
            d = root / FOLDER[split] / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(round(n * scale)):
                tail = f"{split}/{cls}/{i}".encode() + bytes(int(rng.integers(0, 4000)))
                (d / f"{i:05d}.jpg").write_bytes(base + tail)
    return root, time.perf_counter() - t0


def timed(root: Path, **kw) -> dict:
    """One check with its wall time, CPU time and the load average before and after."""
    load0, cpu0, t0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
    rec = check_tree(root, "faces140k", **kw)
    out = {
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    return {**out, "record": rec}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder for the tree (default: a temporary folder)")
    ap.add_argument("--n_scale", type=float, default=1.0, help="fraction of the 140,000 files to write")
    ap.add_argument("--keep", action="store_true", help="keep the tree")
    a = ap.parse_args()
    top = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="dfig_bench_check_"))
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()}", flush=True)
    try:
        root, secs = write_tree(top, a.n_scale)
        print(f"wrote {sum(1 for _ in root.rglob('*.jpg')):,} files in {secs:.0f} s under {root}", flush=True)
        results = {"sample": timed(root), "hash_all": timed(root, hash_all=True)}
        print(format_table(results["sample"]["record"], root))
        for mode, r in results.items():
            d = r["record"]["duplicates"]
            print(f"{mode}: wall {r['wall_s']} s, CPU {r['cpu_s']} s, load {r['load_before']} -> {r['load_after']},"
                  f" {d['files_hashed']:,} files hashed, status {r['record']['status']}")  # fmt: skip
        print(json.dumps({m: {k: v for k, v in r.items() if k != "record"} for m, r in results.items()}))
    finally:
        if not a.keep:
            shutil.rmtree(top if not a.out else top / FACES140K.tree.split("/")[0], ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
