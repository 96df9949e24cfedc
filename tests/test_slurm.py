"""``run_all.py --executor slurm`` on a real one-node Slurm cluster (tests/slurmcluster.py).

Skips with one line where Slurm/munge are not installed (.ci/run installs them). The smoke profile
through Slurm runs only under ``make slurm-smoke`` (after ``make smoke``), which sets DFIG_LOCAL_SMOKE to
the local smoke run's reports folder; its models table must be identical (times aside).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import slurmcluster
from test_pipeline import stamps, tiny_profile  # noqa: F401  (the fixture)

from dfig import paths

#: models-table columns that are wall times, not results
TIME_COLUMNS = ("train_minutes",)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    why = slurmcluster.missing()
    if why:
        pytest.skip(why)
    c = slurmcluster.start(tmp_path_factory.mktemp("slurm"))
    yield c
    slurmcluster.stop(c)


def test_runs_go_through_slurm_in_order(run_all, cluster, tiny_profile, monkeypatch, capsys) -> None:  # noqa: F811
    prof, st = tiny_profile
    monkeypatch.setenv("SLURM_CONF", cluster["env"]["SLURM_CONF"])
    assert run_all.main(["--profile", str(prof), "--executor", "slurm", "--threads", "1"]) == 0
    s = stamps(st)
    assert s["02_b"]["start"] >= max(s["01_a__0"]["end"], s["01_a__1"]["end"])
    man = json.loads((paths.reports_dir("tiny") / "manifest.json").read_text())
    assert all(r["worker"].startswith("slurm job ") and r["status"] == "ok" for r in man["runs"])
    assert "slurm via submitit" in capsys.readouterr().out


def test_a_failed_job_is_named_with_its_log(run_all, cluster, tiny_profile, monkeypatch, capsys) -> None:  # noqa: F811
    prof, st = tiny_profile
    monkeypatch.setenv("SLURM_CONF", cluster["env"]["SLURM_CONF"])
    monkeypatch.setenv("FAIL_K1", "1")
    assert run_all.main(["--profile", str(prof), "--executor", "slurm", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: 01_a__1 (notebooks/01_a.ipynb)" in err and "k1 broke" in err
    log = err.split("job log: ")[1].split()[0]
    assert paths.resolve(log).exists(), f"the job log {log} exists"
    assert "not run: 02_b" in err and "02_b" not in stamps(st)


def models_table(reports: Path) -> list[dict[str, str]]:
    with open(reports / "smoke" / "tables" / "models.csv", encoding="utf-8") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def test_smoke_through_slurm_has_the_local_models_table(cluster, tmp_path: Path) -> None:
    local = os.environ.get("DFIG_LOCAL_SMOKE")
    if not local:
        pytest.skip(
            "the Slurm smoke run compares with make smoke's run: `make slurm-smoke` runs it (DFIG_LOCAL_SMOKE)"
        )
    env = {
        **os.environ,
        **cluster["env"],
        "DFIG_WORK": str(tmp_path / "work"),
        "DFIG_REPORTS": str(tmp_path / "reports"),
    }
    args = os.environ.get("DFIG_SMOKE_ARGS", "").split()
    cmd = [
        sys.executable,
        str(paths.root() / "run_all.py"),
        "--profile",
        "smoke",
        "--executor",
        "slurm",
        *args,
    ]
    assert subprocess.call(cmd, env=env, cwd=paths.root()) == 0
    want, got = models_table(Path(local)), models_table(tmp_path / "reports")
    assert got and got == want
