"""A one-node Slurm cluster for the tests, from Debian's packages, started without systemd (as root).

``start(tmp)`` starts munged (unless one runs), ``slurmctld -D`` and ``slurmd -D`` with a slurm.conf in
``tmp`` and waits until the node is idle; ``stop(cluster)`` stops exactly the daemons it started, by
their process ids. ``missing()`` says why a cluster cannot start here (packages absent, not root), or
None. The packages: ``apt-get install --no-install-recommends slurmctld slurmd slurm-client munge``
(.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

PROGRAMS = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "munged", "mungekey")
INSTALL = "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"


def missing() -> str | None:
    """Why no cluster can start here (one line), or None."""
    absent = [p for p in PROGRAMS if not shutil.which(p) and not Path(f"/usr/sbin/{p}").exists()]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)} missing): {INSTALL} (as .ci/run does)"
    if os.geteuid() != 0:
        return "the one-node Slurm cluster runs its daemons as root (SlurmUser=root): run the tests as root"
    return None


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(tmp: Path, host: str) -> str:
    """The one-node slurm.conf: daemons as root, no cgroups, no accounting, state and spool in ``tmp``."""
    mem = max(1024, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) - 2048)
    return "\n".join(
        [
            "ClusterName=dfigtest",
            f"SlurmctldHost={host}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "AuthType=auth/munge",
            f"StateSaveLocation={tmp}/state",
            f"SlurmdSpoolDir={tmp}/spool",
            f"SlurmctldPidFile={tmp}/slurmctld.pid",
            f"SlurmdPidFile={tmp}/slurmd.pid",
            f"SlurmctldLogFile={tmp}/slurmctld.log",
            f"SlurmdLogFile={tmp}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "MinJobAge=600",
            f"NodeName={host} CPUs={os.cpu_count()} RealMemory={mem} State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def start_munge() -> subprocess.Popen | None:
    """Start munged in the foreground as the munge user unless one answers already; None if reused."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return None
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
    proc = subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "-F"], stderr=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("munged did not start")


def start(tmp: Path, timeout: float = 90.0) -> dict[str, Any]:
    """Start the cluster in ``tmp``; returns {env (SLURM_CONF), procs, tmp}. Raises when not ready in time."""
    host = socket.gethostname().split(".")[0]
    for d in ("state", "spool"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    conf = tmp / "slurm.conf"
    conf.write_text(slurm_conf(tmp, host), encoding="utf-8")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster: dict[str, Any] = {"env": {"SLURM_CONF": str(conf)}, "procs": [], "tmp": tmp}
    munge = start_munge()
    if munge is not None:
        cluster["procs"].append(munge)
    for daemon in ("slurmctld", "slurmd"):
        cluster["procs"].append(
            subprocess.Popen([daemon, "-D"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().startswith("idle"):
            return cluster
        time.sleep(1)
    stop(cluster)
    raise RuntimeError(f"the one-node Slurm cluster was not idle after {timeout:.0f} s; logs in {tmp}")


def stop(cluster: dict[str, Any], timeout: float = 60.0) -> None:
    """Cancel the cluster's jobs and wait until they left (a job step outlives a stopped slurmd), then stop
    the daemons ``start`` started (by their process ids), newest first."""
    env = {**os.environ, **cluster["env"]}
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["scancel", "-u", user], env=env, capture_output=True)
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            break
        time.sleep(1)
    for proc in reversed(cluster["procs"]):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
