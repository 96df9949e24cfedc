"""Start each run once the runs it depends on succeeded, on any executor, until every run ended.

An executor (:class:`dfig.pipeline.local.LocalExecutor`, :class:`dfig.pipeline.slurm.SlurmExecutor`) has
``acquire(spec) -> slot | None``, ``start(spec, slot) -> handle``, ``poll(handle) -> result | None``,
``release(slot)`` and ``cancel(handles)``. A failed run stops its dependents (recorded as not run); the
others finish. Ctrl-C cancels what is running and re-raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dfig.pipeline.graph import dependents


@dataclass
class Outcome:
    """What a whole invocation did: manifest ``entries`` (in completion order), the ``failed`` runs'
    entries, ``not_run`` (name -> the failed run it needed), ``wall`` seconds, summed run seconds."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def run_seconds(self) -> float:
        """The runs' own seconds, summed (the time one worker would have needed)."""
        return round(sum(float(e.get("seconds") or 0) for e in self.entries), 1)


def result_entry(spec: dict[str, Any], res: dict[str, Any], slot: Any, t0: float) -> dict[str, Any]:
    """The manifest entry of a finished run: the worker's entry (or a failure naming the worker's log)
    plus where it ran (``worker``, ``gpu``, ``threads``, ``host``) and its wall seconds as scheduled."""
    entry = res.get("entry") or {
        "run": spec["name"],
        "notebook": f"notebooks/{spec['notebook']}.ipynb",
        "parameters": spec["parameters"],
        "status": "failed",
        "error": f"{res.get('error', 'no result')}; log: {res.get('log')}",
        "output": res.get("log"),
    }
    where = {
        "worker": slot.label(),
        "gpu": getattr(slot, "gpu", None),
        "threads": getattr(slot, "threads", None),
    }
    if res.get("host"):
        where["host"] = res["host"]
    if res.get("log"):
        where["log"] = res["log"]
    return {**entry, **where, "wall_seconds": round(time.time() - t0, 1)}


def run_graph(
    specs: list[dict[str, Any]],
    deps: dict[str, list[str]],
    executor: Any,
    on_start: Callable[[dict[str, Any], Any], None],
    on_done: Callable[[dict[str, Any]], None],
    poll_seconds: float = 0.5,
) -> Outcome:
    """Run every spec in dependency order on ``executor``; return the :class:`Outcome`.

    Arguments: ``specs`` in profile order (:func:`dfig.pipeline.execute.make_spec`); ``deps`` from
    :func:`dfig.pipeline.graph.dependencies`; ``on_start(spec, slot)`` and ``on_done(entry)`` report
    (console, manifest); ``poll_seconds`` between checks of the running runs.
    """
    t_start = time.time()
    out = Outcome()
    pending = list(specs)
    ok: set[str] = set()
    running: dict[str, tuple[dict[str, Any], Any, Any, float]] = {}
    try:
        while pending or running:
            pending = start_ready(pending, deps, ok, running, executor, on_start, out)
            if pending and not running:  # pragma: no cover - an executor that never has room
                raise RuntimeError(f"no executor slot for {pending[0]['name']} although nothing runs")
            for name, (spec, slot, handle, t0) in list(running.items()):
                res = executor.poll(handle)
                if res is None:
                    continue
                executor.release(slot)
                del running[name]
                entry = result_entry(spec, res, slot, t0)
                out.entries.append(entry)
                if res.get("ok"):
                    ok.add(name)
                else:
                    out.failed.append(entry)
                    for d in dependents(deps, name):
                        out.not_run.setdefault(d, name)
                on_done(entry)
            if running:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        executor.cancel([h for _, _, h, _ in running.values()])
        raise
    out.wall = time.time() - t_start
    return out


def start_ready(
    pending: list[dict[str, Any]],
    deps: dict[str, list[str]],
    ok: set[str],
    running: dict[str, Any],
    executor: Any,
    on_start: Callable[[dict[str, Any], Any], None],
    out: Outcome,
) -> list[dict[str, Any]]:
    """Start, in order, the pending runs whose dependencies all succeeded while the executor has room;
    drop those a failure stopped. Returns: the runs still pending."""
    left = []
    for spec in pending:
        name = spec["name"]
        if name in out.not_run:
            continue
        slot = executor.acquire(spec) if all(d in ok for d in deps[name]) else None
        if slot is None:
            left.append(spec)
            continue
        running[name] = (spec, slot, executor.start(spec, slot), time.time())
        on_start(spec, slot)
    return left


__all__ = ["Outcome", "result_entry", "run_graph"]
