"""Smoke profile with ``run_all.py --jobs 1`` and ``--jobs N`` in one benchmark run: wall times, the ratio,
the load average, and whether the models tables are identical.

    python benchmarks/bench_jobs.py [--jobs 2] [--threads 1] [--out work/bench_jobs]

Both runs use the same settings: ``--threads`` CPU threads per run (fixed by the run, so both compute the
same numbers) and ``--set max_minutes=null`` (no time budget, so that the number of epochs never
depends on machine speed; the smoke profile sets none, a copy of it might). Each run writes into its own DFIG_WORK/DFIG_REPORTS
under ``--out``. The models tables are compared on every column but ``train_minutes`` (a wall time).
Exit code 1 when a run failed or the tables differ.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: columns of the models table that are times, not results
TIME_COLUMNS = ("train_minutes",)


def run_smoke(out: Path, jobs: int, threads: int, extra: list[str]) -> tuple[float, int]:
    """One smoke run into ``out``; returns (wall seconds, exit code)."""
    env = {**os.environ, "DFIG_WORK": str(out / "work"), "DFIG_REPORTS": str(out / "reports")}
    cmd = [sys.executable, str(ROOT / "run_all.py"), "--profile", "smoke", "--jobs", str(jobs)]
    cmd += ["--threads", str(threads), "--set", "max_minutes=null", *extra]
    print(f"--- {' '.join(cmd[1:])}   (load average {load()})", flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, env=env, cwd=ROOT)
    return time.time() - t0, rc


def models_table(out: Path) -> list[dict[str, str]]:
    """The models table of a run without its time columns ([] when absent)."""
    p = out / "reports" / "smoke" / "tables" / "models.csv"
    if not p.exists():
        return []
    with open(p, encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in csv.DictReader(f)]


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    """Run both, print the comparison. Returns: 0 when both ran and the tables are identical."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "work" / "bench_jobs"))
    args, extra = ap.parse_known_args(argv)
    out = Path(args.out)
    print(f"cores {os.cpu_count()}, load average {load()}")
    walls = {}
    for jobs in (1, args.jobs):
        walls[jobs], rc = run_smoke(out / f"jobs{jobs}", jobs, args.threads, extra)
        print(f"--- jobs {jobs}: {walls[jobs]:.1f} s wall, exit {rc}, load average {load()}", flush=True)
        if rc:
            return 1
    t1, tn = models_table(out / "jobs1"), models_table(out / f"jobs{args.jobs}")
    same = bool(t1) and t1 == tn
    print(
        f"jobs 1: {walls[1]:.1f} s; jobs {args.jobs}: {walls[args.jobs]:.1f} s; "
        f"speed-up {walls[1] / walls[args.jobs]:.2f}x; models table ({len(t1)} rows) "
        f"{'identical' if same else 'DIFFERS'}; load average now {load()}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
