"""One ``run_all.py`` per profile at a time, and a manifest that says whether its run is still going.

- **Lock**: ``reports/<profile>/.run_all.lock``, held with ``fcntl.flock`` for the whole invocation and
  holding the holder's pid, host, start time and planned runs (JSON). A second ``run_all`` on the same
  profile is refused with a message naming that pid. The operating system drops a flock when its process
  dies, so the lock of a killed run is simply taken over; its leftover content says who died.
- **Status**: while a run is in progress ``manifest.json`` says ``status: running`` (with its pid, no
  finish time). When it ends without finishing it says ``incomplete``, with ``incomplete.finished_runs``
  and ``incomplete.unfinished_runs``: at once on Ctrl-C or SIGTERM (:func:`abandon`), and after kill -9
  when the next ``run_all`` takes the lock over (or when :func:`read_status` finds the pid dead).
"""

from __future__ import annotations

import json
import os
import platform
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from dfig import io, paths

#: the lock file's name in the profile's reports folder
LOCK_NAME = ".run_all.lock"
#: the lock files this process holds, by folder (a second acquire in the same process reuses its lock)
HELD: dict[str, IO[str]] = {}


class RunInterrupted(BaseException):
    """SIGTERM arrived during a run (raised by the handler :func:`acquire` installs)."""


def lock_file(profile: str) -> Path:
    """``reports/<profile>/.run_all.lock``."""
    return paths.reports_dir(profile) / LOCK_NAME


def check_writable(profile: str) -> None:
    """Refuse (one-line ``SystemExit``) when the profile's reports or work folder cannot be written.

    Arguments: ``profile`` the profile name. Returns nothing.
    """
    from dfig.clierrors import check_writable as probe
    from dfig.clierrors import one_line

    for folder, what in (
        (paths.reports_dir(profile), "DFIG_REPORTS"),
        (paths.work_dir(profile), "DFIG_WORK"),
    ):
        try:
            probe(folder, f"folder (set {what})")
        except OSError as e:
            raise SystemExit(one_line(e)) from None


def acquire(profile: str, runs: list[str], started: str) -> dict[str, Any]:
    """Take the profile's lock, or refuse naming the process that holds it.

    Arguments: ``profile`` name; ``runs`` the planned run names; ``started`` this invocation's start
    time (as the manifest records it). Returns the content a dead holder left (``{}`` if none): then the
    manifest it left ``running`` is marked ``incomplete``. Raises ``SystemExit`` (one line) when another
    live ``run_all`` holds the lock or the folders cannot be written.
    """
    import fcntl

    check_writable(profile)
    path = lock_file(profile)
    key = str(path.resolve())
    if key in HELD:  # this process already holds it (an earlier main() in the same interpreter)
        return {}
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open until release()
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_lock(f)
        f.close()
        raise SystemExit(
            f"profile {profile!r} is already being run by run_all (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, started {holder.get('started', '?')}; lock {paths.portable(path)}): "
            f"wait for it to finish or stop it (kill {holder.get('pid', '<pid>')}); two runs would mix their results"
        ) from None
    old = read_lock(f)
    f.seek(0)
    f.truncate()
    mine = {"pid": os.getpid(), "host": platform.node(), "started": started, "runs": runs}
    f.write(json.dumps(mine) + "\n")
    f.flush()
    HELD[key] = f
    if old.get("pid"):
        mark_incomplete(
            profile, f"run_all pid {old['pid']} (started {old.get('started')}) ended without finishing", old
        )
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    return old


def _on_sigterm(signum: int, frame: Any) -> None:
    raise RunInterrupted("SIGTERM")


def read_lock(f: IO[str]) -> dict[str, Any]:
    """The JSON a lock file holds (``{}`` when empty or unreadable)."""
    f.seek(0)
    try:
        data = json.loads(f.read() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def release(profile: str) -> None:
    """Empty and unlock the profile's lock (a finished run leaves no holder behind). Returns nothing."""
    f = HELD.pop(str(lock_file(profile).resolve()), None)
    if f is not None:
        f.seek(0)
        f.truncate()
        f.close()
    if not HELD and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def abandon(reason: str) -> list[Path]:
    """Mark the manifest of every profile this process still holds ``incomplete``, and release them.

    Arguments: ``reason`` (e.g. ``"interrupted (SIGTERM)"``). Returns the manifests marked.
    """
    marked = []
    for key, f in list(HELD.items()):
        profile = Path(key).parent.name
        if mark_incomplete(profile, reason, read_lock(f)):
            marked.append(paths.reports_dir(profile) / "manifest.json")
        release(profile)
    return marked


def mark_incomplete(profile: str, reason: str, holder: dict[str, Any]) -> bool:
    """Rewrite a manifest that says ``running`` as ``incomplete``: why, which runs finished, which did not.

    Arguments: ``profile``; ``reason``; ``holder`` the lock content of the invocation (its planned
    ``runs`` and ``started``). Returns whether the manifest was changed.
    """
    dest = paths.reports_dir(profile) / "manifest.json"
    if not dest.is_file():
        return False
    man = io.load_json(dest)
    if man.get("status") != "running":
        return False
    this = [p for p in man.get("partial_runs", []) if p.get("started") == holder.get("started")]
    done = this[-1]["runs"] if this else [e["run"] for e in man.get("runs", [])]
    ok = {e["run"] for e in man.get("runs", []) if e.get("status") == "ok"}
    finished = [r for r in done if r in ok]
    man.update(
        status="incomplete",
        finished=None,
        incomplete={
            "reason": reason,
            "noticed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "finished_runs": finished,
            "unfinished_runs": [r for r in holder.get("runs", []) if r not in finished],
        },
    )
    io.save_json(man, dest, portable=True)
    return True


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(profile: str) -> str:
    """The manifest's status, ``incomplete`` for a ``running`` one whose process is gone ("" if none).

    Arguments: ``profile``. Returns: ``ok``, ``failed``, ``running``, ``incomplete`` or ``""``.
    """
    dest = paths.reports_dir(profile) / "manifest.json"
    if not dest.is_file():
        return ""
    man = io.load_json(dest)
    status = str(man.get("status", ""))
    if status == "running" and man.get("host") in (None, platform.node()):
        if man.get("pid") and not pid_alive(int(man["pid"])):
            return "incomplete"
    return status


__all__ = [
    "HELD",
    "LOCK_NAME",
    "RunInterrupted",
    "abandon",
    "acquire",
    "check_writable",
    "lock_file",
    "mark_incomplete",
    "pid_alive",
    "read_lock",
    "read_status",
    "release",
]
