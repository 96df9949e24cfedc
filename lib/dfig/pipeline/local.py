"""Run papermill runs as worker processes on this machine: one GPU each, or a fixed share of the cores.

A run's thread count is fixed by the run (its ``num_threads`` parameter when > 0, else ``threads``,
exported as OMP_NUM_THREADS...; by default none is exported and torch takes every core), never by how
many runs share the machine, so ``--jobs N`` computes exactly
what ``--jobs 1`` does. On CPU a run starts only when its threads fit in the free cores (a run wanting
more than the machine runs alone): no oversubscription. On GPUs each run gets one GPU of ``gpus``
through ``CUDA_VISIBLE_DEVICES``. One run at a time on the CPU (the default) runs in this process, as
before, with the same thread variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfig import paths
from dfig.pipeline.execute import run_spec

#: environment variables that set a process's CPU threads (torch reads OMP_NUM_THREADS at import)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_count() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_threads(spec: dict[str, Any], default: int) -> int:
    """The CPU threads of one run: its ``num_threads`` parameter when > 0, else ``default``."""
    n = spec["parameters"].get("num_threads") or 0
    return int(n) if int(n) > 0 else int(default)


@dataclass
class Slot:
    """Where one run executes: ``worker`` index, ``gpu`` (a CUDA index as text, or None), ``threads``."""

    worker: int
    gpu: str | None
    threads: int
    pinned: bool = True  # False: the machine's default thread count (no thread variable is exported)

    def env(self) -> dict[str, str]:
        """The thread variables this run's process gets (none when the run keeps the default)."""
        return {v: str(self.threads) for v in THREAD_VARS} if self.pinned else {}

    def label(self) -> str:
        """``worker 1``, ``worker 1 gpu 3``: what the console and the manifest show."""
        return f"worker {self.worker}" + (f" gpu {self.gpu}" if self.gpu is not None else "")


@dataclass
class LocalExecutor:
    """Worker processes on this machine. ``jobs`` runs at most at once; ``gpus`` (CUDA indices) gives one
    GPU per run (then at most ``len(gpus)`` at once); else ``cores`` is the CPU budget."""

    jobs: int = 1
    gpus: list[str] = field(default_factory=list)
    threads: int = 0  # 0 = the machine's default (every core), no thread variable exported
    cores: int = 0  # 0 = cpu_count()
    folder: Path | None = None  # spec/result/log files (default work/<profile>/pipeline)
    busy: dict[int, Slot] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cores = self.cores or cpu_count()

    def describe(self) -> str:
        """One line: how runs are spread (printed at the start)."""
        if self.gpus:
            return f"local, {self.capacity()} at once, one GPU each ({','.join(self.gpus)})"
        threads = f"{self.threads} thread(s)" if self.threads else "the default threads (every core)"
        return f"local, up to {self.jobs} at once on {self.cores} cores, {threads} per run"

    def capacity(self) -> int:
        """How many runs may run at once."""
        return min(self.jobs, len(self.gpus)) if self.gpus else self.jobs

    def acquire(self, spec: dict[str, Any]) -> Slot | None:
        """A free slot for ``spec`` (reserved), or None when it must wait."""
        if len(self.busy) >= self.capacity():
            return None
        threads = run_threads(spec, self.threads or self.cores)
        pinned = bool(self.threads or spec["parameters"].get("num_threads"))
        if not self.gpus and self.busy:
            used = sum(s.threads for s in self.busy.values())
            if used + threads > self.cores:
                return None
        worker = min(set(range(self.capacity())) - set(self.busy))
        gpu = None
        if self.gpus:
            gpu = sorted(set(self.gpus) - {s.gpu for s in self.busy.values()}, key=self.gpus.index)[0]
        self.busy[worker] = slot = Slot(worker, gpu, threads, pinned)
        return slot

    def release(self, slot: Slot) -> None:
        """Free ``slot`` after its run ended."""
        self.busy.pop(slot.worker, None)

    def inline(self) -> bool:
        """One run at a time on the CPU: runs execute in this process (no worker start-up per run)."""
        return self.capacity() == 1 and not self.gpus

    def start(self, spec: dict[str, Any], slot: Slot) -> dict[str, Any]:
        """Start a worker process for ``spec`` on ``slot`` (or, :meth:`inline`, run it here and now with
        the same thread variables). Returns: the handle :meth:`poll` takes."""
        if self.inline():
            saved = {v: os.environ.get(v) for v in THREAD_VARS}
            os.environ.update(slot.env())
            try:
                return {"done": run_spec(spec)}
            finally:
                for v, old in saved.items():
                    os.environ.pop(v, None) if old is None else os.environ.__setitem__(v, old)
        folder = self.folder or paths.work_dir(spec["env"]["DFIG_PROFILE"]) / "pipeline"
        folder.mkdir(parents=True, exist_ok=True)
        spec_file, out_file, log = (folder / f"{spec['name']}{s}" for s in (".json", ".result.json", ".log"))
        out_file.unlink(missing_ok=True)
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        env = {**os.environ, **slot.env()}
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        with open(log, "w", encoding="utf-8") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dfig.pipeline.worker", str(spec_file), str(out_file)],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        return {"proc": proc, "result": out_file, "log": log}

    def poll(self, handle: dict[str, Any]) -> dict[str, Any] | None:
        """None while the run goes on; then ``{"ok", "entry", "host"}`` (a broken worker: ok False, its log)."""
        if "done" in handle:
            return handle["done"]
        code = handle["proc"].poll()
        if code is None:
            return None
        if code == 0 and handle["result"].exists():
            return json.loads(handle["result"].read_text(encoding="utf-8"))
        return {
            "ok": False,
            "entry": None,
            "error": f"worker exited with code {code}",
            "log": str(handle["log"]),
        }

    def cancel(self, handles: list[dict[str, Any]]) -> None:
        """Stop the worker processes of ``handles`` (Ctrl-C), and wait for them."""
        handles = [h for h in handles if "proc" in h]
        for h in handles:
            if h["proc"].poll() is None:
                h["proc"].terminate()
        for h in handles:
            try:
                h["proc"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                h["proc"].kill()


__all__ = ["THREAD_VARS", "LocalExecutor", "Slot", "cpu_count", "run_threads"]
