"""Scale rehearsal on the CPU: the bookkeeping that grows with the number of files N, on synthetic trees.

    python benchmarks/bench_scale.py [--sizes 10000,40000,140000] [--out DIR]

Builds a tree of N tiny PNG files ({train,val,test}/{real,fake}, 60/20/20 %) and times, per N: listing
(``list_images``) and the layout check (``discover``), the resume scan of a tree stage whose output is
half done (``dfig.tree.plan_tree``), a per-image predictions CSV of N rows (``dfig.io``), the manifest's
data counts, the plan of the sample profile on that tree (``run_all.py --plan``), and bootstrap
intervals on 20,000 predictions (fixed size: it must not grow with N). Prints seconds and peak Python
memory (tracemalloc) per step and N, and the growth exponent b of time ~ N^b between the smallest and
the largest N (1 = linear; N log N gives about 1.1 over this range).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build_tree(root: Path, n: int) -> Path:
    """``n`` copies of one 8x8 PNG laid out as a dataset; returns ``root``."""
    from PIL import Image

    root.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / ".one.png")
    data = (root / ".one.png").read_bytes()
    for i in range(n):
        split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
        d = root / split / ("real" if i % 2 else "fake")
        if i < 10:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:07d}.png").write_bytes(data)
    return root


def half_output(tree: Path, out: Path) -> None:
    """Hard links of every second file of ``tree`` under ``out``: a stage output half done (resume)."""
    for i, f in enumerate(sorted(tree.rglob("*.png"))):
        if i % 2 == 0:
            dest = out / f.relative_to(tree)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, dest)


def timed(fn) -> tuple[float, float]:
    """(seconds, peak MB of Python allocations) of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return dt, peak


def steps(tree: Path, work: Path, n: int) -> dict:
    """The timed steps on a tree of ``n`` files: name -> zero-argument callable."""
    import pandas as pd

    from dfig import io
    from dfig import tree as dtree
    from dfig.core.metrics import metrics_with_ci
    from dfig.data.layout import discover, list_images
    from dfig.report import manifest

    run_all = load_run_all()
    prof = run_all.load_profile("sample")
    rng = np.random.default_rng(0)
    y20k, p20k = rng.integers(0, 2, 20_000), rng.random(20_000)
    frame = pd.DataFrame(
        {
            "path": [f"test/real/{i:07d}.png" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "p_fake": rng.random(n),
        }
    )
    frame["pred"] = (frame.p_fake > 0.5).astype(int)

    def plan() -> None:
        from dfig.pipeline import plan as pl

        pl.format_plan(pl.make_plan(prof, run_all.expand(prof, str(tree), {}), workers=8))

    return {
        "list_images": lambda: list_images(tree),
        "discover (layout check)": lambda: discover(tree),
        "resume scan (plan_tree, half done)": lambda: dtree.plan_tree(tree, work / "out", ".png"),
        "per-image CSV (N rows)": lambda: io.save_predictions_csv(frame, work / "pred.csv"),
        "manifest data counts": lambda: manifest.data_counts("scale"),
        "plan (sample profile)": plan,
        "bootstrap CI, 20k predictions x100": lambda: metrics_with_ci(y20k, p20k, n_boot=100),
    }


def load_run_all():
    """run_all.py as a module."""
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    """Build, time and print; exit 1 when a step grows faster than N log N (exponent > 1.25)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,40000,140000")
    ap.add_argument("--out", default=None, help="scratch folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Path(args.out or tempfile.mkdtemp(prefix="dfig-scale-"))
    os.environ["DFIG_WORK"] = str(base / "work")
    os.environ["DFIG_REPORTS"] = str(base / "reports")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; scratch {base}")
    results: dict[str, dict[int, tuple[float, float]]] = {}
    try:
        for n in sizes:
            tree = base / f"tree{n}"
            t0 = time.perf_counter()
            build_tree(tree, n)
            work = base / "work" / "scale"
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True)
            (work / "raw").symlink_to(tree)
            half_output(tree, work / "out")
            print(f"N={n}: tree built in {time.perf_counter() - t0:.1f} s", flush=True)
            for name, fn in steps(tree, work, n).items():
                results.setdefault(name, {})[n] = timed(fn)
                print(
                    f"  {name:40s} {results[name][n][0]:8.3f} s  peak {results[name][n][1]:8.1f} MB",
                    flush=True,
                )
            shutil.rmtree(tree)
    finally:
        if not args.out:
            shutil.rmtree(base, ignore_errors=True)
    return report(results, sizes)


def report(results: dict[str, dict[int, tuple[float, float]]], sizes: list[int]) -> int:
    """Print the table and the exponents. Returns: 1 when a step grows faster than N log N."""
    lo, hi = sizes[0], sizes[-1]
    nlogn = math.log(hi * math.log(hi) / (lo * math.log(lo))) / math.log(hi / lo)
    print("\nstep | " + " | ".join(f"N={n} s (MB)" for n in sizes) + f" | exponent (N log N = {nlogn:.2f})")
    worst = 0.0
    for name, r in results.items():
        b = math.log(max(r[hi][0], 1e-4) / max(r[lo][0], 1e-4)) / math.log(hi / lo)
        fixed = name.startswith("bootstrap")
        worst = worst if fixed else max(worst, b)
        cells = " | ".join(f"{r[n][0]:.3f} ({r[n][1]:.0f})" for n in sizes)
        print(f"{name} | {cells} | {b:.2f}{' (fixed size)' if fixed else ''}")
    ok = worst <= 1.25
    print(f"largest exponent {worst:.2f}: {'linear / N log N' if ok else 'FASTER THAN N log N'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
