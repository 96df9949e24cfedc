"""Running a profile's papermill runs: their dependency graph, a local and a Slurm executor, the plan.

``run_all.py`` expands a profile into runs; :mod:`dfig.pipeline.scheduler` starts each run once the runs
it depends on (:mod:`dfig.pipeline.graph`) are done, on an executor: :mod:`dfig.pipeline.local`
(subprocesses, one GPU or a fixed share of the cores each) or :mod:`dfig.pipeline.slurm` (one Slurm
job per run through submitit). :mod:`dfig.pipeline.plan` prints the files, disk and time per stage.
"""

__all__: list[str] = []
