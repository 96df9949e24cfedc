"""run_all.py's options for running runs in parallel, on Slurm, and for the plan; builds the executor.

``--jobs N`` (runs at once), ``--gpus 0,1`` (one GPU per run), ``--threads T`` (CPU threads of every
run that does not set ``num_threads``), ``--executor local|slurm`` with ``--slurm-partition``,
``--gpus-per-job``, ``--slurm-time``, ``--slurm-mem``; ``--plan`` and ``--rates device_check.json``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from dfig.pipeline.local import LocalExecutor
from dfig.pipeline.slurm import SlurmExecutor


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Add the pipeline options to run_all.py's parser."""
    g = ap.add_argument_group("parallel runs, Slurm and the plan (README: More than one GPU)")
    g.add_argument("--jobs", type=int, default=None, help="runs at once (local default 1; slurm: no cap)")
    g.add_argument(
        "--gpus",
        default=None,
        help="CUDA indices, one per run, e.g. 0,1,2,3 (default: all with --jobs > 1 on CUDA)",
    )
    g.add_argument(
        "--threads", type=int, default=0, help="CPU threads per run without num_threads (default: every core)"
    )
    g.add_argument("--executor", choices=("local", "slurm"), default="local", help="where runs execute")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition (SBATCH_PARTITION overrides)")
    g.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per Slurm job (0: none)")
    g.add_argument(
        "--slurm-time", type=int, default=0, help="time limit per job in minutes (0: the partition's)"
    )
    g.add_argument("--slurm-mem", default=None, help="memory per job, e.g. 32G (default: the partition's)")
    g.add_argument("--plan", action="store_true", help="print files, disk and time per stage, run nothing")
    g.add_argument(
        "--rates", default=None, help="device_check.json of benchmarks/device_table.py: projected time"
    )


def visible_gpus(args: argparse.Namespace, profile: dict[str, Any]) -> list[str]:
    """The GPUs local runs are spread over: ``--gpus``; else, with ``--jobs`` > 1 and a profile that may use
    CUDA, every GPU torch sees (as indices into ``CUDA_VISIBLE_DEVICES`` when it is set); else none."""
    if args.gpus:
        return [g.strip() for g in args.gpus.split(",") if g.strip()]
    if (args.jobs or 1) <= 1 or profile.get("common", {}).get("device") == "cpu":
        return []
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    given = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return (given or [str(i) for i in range(n)])[:n]


def make_executor(args: argparse.Namespace, profile: dict[str, Any]) -> Any:
    """The executor the options ask for (:class:`LocalExecutor` by default, or :class:`SlurmExecutor`)."""
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    if args.executor == "slurm":
        return SlurmExecutor(
            partition=args.slurm_partition,
            gpus_per_job=args.gpus_per_job,
            minutes=args.slurm_time,
            mem=args.slurm_mem,
            threads=args.threads,
            jobs=args.jobs or 0,
        )
    gpus = visible_gpus(args, profile)
    return LocalExecutor(jobs=args.jobs or (len(gpus) if args.gpus else 1), gpus=gpus, threads=args.threads)


def print_plan(
    profile: dict[str, Any], runs: list[dict[str, Any]], args: argparse.Namespace, executor: Any
) -> str | None:
    """Print the plan (:mod:`dfig.pipeline.plan`) for ``runs``; return the refusal line when the disk
    need of a tree exceeds its filesystem's free space, else None."""
    from dfig.pipeline import plan

    p = plan.make_plan(
        profile, runs, rates_file=args.rates, workers=max(2, getattr(executor, "capacity", lambda: 1)())
    )
    print(plan.format_plan(p), flush=True)
    return plan.disk_refusal(p)


__all__ = ["add_arguments", "make_executor", "print_plan", "visible_gpus"]
