"""Run papermill runs as Slurm jobs through submitit: one job per run, submitted when the runs it depends
on succeeded (so the notebook order holds), outputs in the same work/ and reports/ folders (a filesystem
shared by the submitting machine and the nodes is assumed).

sbatch reads the usual ``SBATCH_*`` environment variables, and they override what is set here
(``--slurm-partition``, ``--gpus-per-job``, ``--slurm-time``, ``--slurm-mem``). Without slurmdbd
``sacct`` is absent and submitit's ``job.state`` reads UNKNOWN: a job is done when its result file
exists, and failed when it has left the queue (``squeue``) without one.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.pipeline.execute import run_spec
from dfig.pipeline.local import THREAD_VARS, cpu_count, run_threads

#: seconds a job may be out of the queue without a result file before it counts as failed
GRACE_SECONDS = 20.0


@dataclass
class JobSlot:
    """One submitted run: ``worker`` index, the Slurm ``job_id`` once submitted, its ``threads``."""

    worker: int
    threads: int
    job_id: str = "?"
    gpu: str | None = None
    pinned: bool = True  # False: the job keeps its default thread count (no thread variable exported)

    def label(self) -> str:
        """``slurm job 123``: what the console and the manifest show."""
        return f"slurm job {self.job_id}"


@dataclass
class SlurmExecutor:
    """Submit each run as a Slurm job (submitit). ``jobs`` caps the jobs queued at once (0: no cap)."""

    partition: str | None = None
    gpus_per_job: int = 0
    minutes: int = 0
    mem: str | None = None
    threads: int = 0  # 0: every core of this machine as CPUs per job, thread count left to the job
    jobs: int = 0
    folder: Path | None = None
    submitted: int = 0
    busy: dict[int, JobSlot] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cpus = self.threads or cpu_count()  # CPUs per job; threads pinned only when asked for

    def describe(self) -> str:
        """One line: where the jobs go (printed at the start)."""
        part = self.partition or "the default partition"
        gpus = f", {self.gpus_per_job} GPU(s) per job" if self.gpus_per_job else ""
        return f"slurm via submitit, {part}{gpus}, {self.cpus} CPU(s) per job; logs in {self.log_folder()}"

    def log_folder(self) -> Path:
        """Where submitit keeps each job's script, stdout/stderr and result (``work/<profile>/slurm``)."""
        return self.folder or paths.work_dir() / "slurm"

    def acquire(self, spec: dict[str, Any]) -> JobSlot | None:
        """A slot for ``spec`` unless ``jobs`` jobs are queued already."""
        if self.jobs and len(self.busy) >= self.jobs:
            return None
        self.submitted += 1
        pinned = bool(self.threads or spec["parameters"].get("num_threads"))
        slot = JobSlot(self.submitted, run_threads(spec, self.cpus), pinned=pinned)
        self.busy[slot.worker] = slot
        return slot

    def release(self, slot: JobSlot) -> None:
        """Forget ``slot`` after its job ended."""
        self.busy.pop(slot.worker, None)

    def start(self, spec: dict[str, Any], slot: JobSlot) -> dict[str, Any]:
        """Submit ``spec`` as one job. Returns: the handle :meth:`poll` takes (the submitit job)."""
        import submitit

        ex = submitit.SlurmExecutor(folder=self.log_folder() / "%j")
        params: dict[str, Any] = {"job_name": f"dfig-{spec['name']}", "cpus_per_task": slot.threads}
        params.update({"ntasks_per_node": 1, "nodes": 1})
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        # submitit writes --time=5 unless told otherwise; None leaves the partition's limit (or SBATCH_TIMELIMIT)
        params["time"] = self.minutes or None
        if self.mem:
            params["mem"] = self.mem
        ex.update_parameters(**params)
        pin = {v: str(slot.threads) for v in THREAD_VARS} if slot.pinned else {}
        spec = {**spec, "env": {**spec["env"], **pin}}  # as a local run: same threads, same numbers
        job = ex.submit(run_spec, spec)
        slot.job_id = str(job.job_id)
        return {"job": job, "gone_since": None}

    def poll(self, handle: dict[str, Any]) -> dict[str, Any] | None:
        """None while the job is queued or running; then ``{"ok", "entry", "host", "log"}``."""
        job = handle["job"]
        log = paths.portable(job.paths.stderr)
        if job.paths.result_pickle.exists():
            try:
                return {**job.result(), "log": log}
            except Exception as e:  # the worker itself broke (import error, killed): submitit's message
                return {
                    "ok": False,
                    "entry": None,
                    "error": f"slurm job {job.job_id}: {job_error(e)}",
                    "log": log,
                }
        if in_queue(str(job.job_id)):
            handle["gone_since"] = None
            return None
        handle["gone_since"] = handle["gone_since"] or time.time()
        if time.time() - handle["gone_since"] < GRACE_SECONDS:
            return None
        return {
            "ok": False,
            "entry": None,
            "error": f"slurm job {job.job_id} ended without a result",
            "log": log,
        }

    def cancel(self, handles: list[dict[str, Any]]) -> None:
        """Cancel the jobs of ``handles`` (scancel), e.g. on Ctrl-C."""
        for h in handles:
            h["job"].cancel(check=False)


def job_error(e: Exception) -> str:
    """The telling line of submitit's error for a job: its last line that names an error, else its first."""
    lines = [ln.strip() for ln in str(e).splitlines() if len(ln.strip()) > 3]
    named = [ln for ln in lines if "Error" in ln] or [ln for ln in lines if "error" in ln]
    return (named[-1] if named else (lines or [type(e).__name__])[0])[:300]


def in_queue(job_id: str) -> bool:
    """True while ``squeue`` lists the job (pending, running, completing)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: keep waiting
    return out.returncode == 0 and bool(out.stdout.strip())


__all__ = ["GRACE_SECONDS", "JobSlot", "SlurmExecutor", "in_queue", "job_error"]
