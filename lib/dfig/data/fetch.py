"""Download and unpack a known collection: ``python -m dfig.data fetch faces140k --out DIR``.

The download uses the Kaggle client (``pip install -e ".[data]"`` in the repository, i.e. the ``kaggle`` package: its
``kaggle`` command, or ``python -m kaggle``) when it is installed and Kaggle credentials exist; it
resumes an interrupted download itself. Without either, :class:`FetchUnavailable` carries the exact
steps (the CLI prints them and exits 2). ``--command`` runs any other downloader, ``--archive`` unpacks
an archive already downloaded (e.g. in a browser). Unpacking is resumable too: every file is written
atomically, a file already there with the member's size is kept, any other file in the way is refused
(never overwritten). Layout of ``DIR``: the archive's own (``real_vs_fake/real-vs-fake/{train,valid,
test}/{real,fake}`` + CSVs), the archive in ``DIR/.download/`` while needed, ``DIR/.dfig_fetch.json``.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from dfig import io
from dfig.data.catalog import Collection, collection

#: where the archive is downloaded, inside ``--out`` (hidden: never read as data)
DOWNLOAD_DIR = ".download"
#: the fetch record inside ``--out``
RECORD = ".dfig_fetch.json"
#: a downloader writes the collection's archive into the folder it is given
Downloader = Callable[[Collection, Path], None]


class FetchUnavailable(RuntimeError):
    """No way to download here (no client, no credentials); the message is the steps to take."""


def kaggle_credentials() -> str | None:
    """Where Kaggle credentials are found (a variable or a file name), or None; reads no network.

    The places the Kaggle client reads: ``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``,
    ``access_token``, ``kaggle.json`` (in ``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or
    ``$XDG_CONFIG_HOME/kaggle``) and the ``credentials.json`` of ``kaggle auth login``.
    """
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    home = Path(os.path.expanduser("~"))
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    dirs = [Path(os.environ["KAGGLE_CONFIG_DIR"])] if os.environ.get("KAGGLE_CONFIG_DIR") else []
    dirs += [home / ".kaggle", xdg]
    names = ("kaggle.json", "access_token", "access_token.txt", "credentials.json")
    for f in (d / n for d in dirs for n in names):
        if f.is_file():
            return str(f)
    return None


def kaggle_command() -> list[str] | None:
    """The Kaggle client's command: ``kaggle`` on PATH or beside this Python, else ``python -m kaggle``."""
    found = shutil.which("kaggle") or shutil.which("kaggle", path=str(Path(sys.executable).parent))
    if found:
        return [found]
    return [sys.executable, "-m", "kaggle"] if importlib.util.find_spec("kaggle") else None


def run_downloader(argv: list[str], what: str) -> None:
    """Run a download command (its output goes to the console); a failure raises ``RuntimeError``."""
    print("fetch: " + " ".join(shlex.quote(a) for a in argv), flush=True)
    rc = subprocess.run(argv, check=False).returncode
    if rc != 0:
        raise RuntimeError(f"{what} failed (exit {rc}); run the same command again to resume")


def kaggle_downloader(cmd: list[str]) -> Downloader:
    """A downloader running ``kaggle datasets download SLUG -p DEST`` (it resumes a partial file)."""
    return lambda coll, dest: run_downloader(
        [*cmd, "datasets", "download", coll.slug, "-p", str(dest)], "kaggle"
    )


def command_downloader(template: str) -> Downloader:
    """A downloader running ``template`` with ``{slug}``, ``{archive}`` and ``{dest}`` filled in."""

    def download(coll: Collection, dest: Path) -> None:
        text = template.format(slug=coll.slug, archive=coll.archive, dest=shlex.quote(str(dest)))
        run_downloader(shlex.split(text), "--command")

    return download


def steps(coll: Collection, out: str | os.PathLike[str], reason: str) -> str:
    """What to do when this machine cannot download: the exact commands, the token, the sizes."""
    out = str(out)
    return "\n".join(
        [
            f"cannot download {coll.name} here: {reason}.",
            f'"{coll.title}": Kaggle dataset {coll.slug}, about {coll.download_gb:.0f} GB to download and '
            f"{coll.unpacked_gb:.0f} GB unpacked ({coll.total:,} files; keep {coll.download_gb + coll.unpacked_gb:.0f} GB free).",
            '  1. install the Kaggle client:   pip install -e ".[data]"   (in the repository: the kaggle package)',
            "  2. create an API token: sign in to Kaggle, Settings -> API -> Create New Token; save the",
            "     kaggle.json it gives as ~/.kaggle/kaggle.json (chmod 600), or export KAGGLE_USERNAME and",
            "     KAGGLE_KEY (newer clients: export KAGGLE_API_TOKEN, or save the token as ~/.kaggle/access_token)",
            f"  3. run again:   python -m dfig.data fetch {coll.name} --out {out}   (resumes if interrupted)",
            "  (what it runs: kaggle datasets download "
            f"{coll.slug} -p {out}/{DOWNLOAD_DIR}, then unpacks into {out})",
            "Without the client: download the archive from the dataset's Kaggle page in a browser, then",
            f"  python -m dfig.data fetch {coll.name} --out {out} --archive PATH/{coll.archive}",
            f"Then check it:   python -m dfig.data check {out} --expect {coll.name}",
        ]
    )


def choose_downloader(coll: Collection, out: Path, command: str | None = None) -> Downloader:
    """``--command`` if given, else the Kaggle client with credentials, else :class:`FetchUnavailable`."""
    if command:
        return command_downloader(command)
    cmd = kaggle_command()
    if cmd is None:
        raise FetchUnavailable(
            steps(coll, out, 'the Kaggle client is not installed (pip install -e ".[data]")')
        )
    if kaggle_credentials() is None:
        raise FetchUnavailable(
            steps(coll, out, "no Kaggle credentials found (no token file, no KAGGLE_* variable)")
        )
    return kaggle_downloader(cmd)


def member_path(out: Path, name: str) -> Path:
    """Where an archive member goes under ``out``; an absolute name or one with ``..`` is refused."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"archive member {name!r} would land outside {out}: refusing to unpack it")
    return out.joinpath(*pure.parts)


def unpack(archive: Path, out: Path) -> dict[str, int]:
    """Unpack ``archive`` into ``out``, resumably; returns ``{"members", "written", "kept"}``.

    A file already there with the member's size is kept (written by an earlier, interrupted run:
    every file is written atomically); a file of another size is not ours and stops the unpacking.
    Raises ``ValueError`` for a corrupt archive or a file in the way, naming it and the fix.
    """
    io.remove_orphan_temps(out, owned=lambda dest: DOWNLOAD_DIR not in dest.relative_to(out).parts)
    counts = {"members": 0, "written": 0, "kept": 0}
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                dest = member_path(out, info.filename)
                counts["members"] += 1
                if dest.is_file() and dest.stat().st_size == info.file_size:
                    counts["kept"] += 1
                    continue
                if dest.exists() or dest.is_symlink():
                    raise ValueError(
                        f"{dest} is in the way (not {info.file_size} bytes as in {archive.name}) and was not "
                        "written by this command: move it away, or choose another --out"
                    )
                with io.atomic_path(dest) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                counts["written"] += 1
    except (zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{archive}: not a complete zip archive ({e}): delete it and fetch again") from e
    return counts


def find_archive(coll: Collection, folder: Path) -> Path | None:
    """The collection's archive in ``folder`` (its own name, else the only ``.zip`` there), or None."""
    own = folder / coll.archive
    if own.is_file():
        return own
    zips = sorted(folder.glob("*.zip")) if folder.is_dir() else []
    return zips[0] if len(zips) == 1 else None


def fetch(
    name: str,
    out: str | os.PathLike[str],
    downloader: Downloader | None = None,
    command: str | None = None,
    archive: str | os.PathLike[str] | None = None,
    keep_archive: bool = False,
) -> dict[str, Any]:
    """Download (unless ``archive`` is given) and unpack collection ``name`` into ``out``; resumable.

    Arguments: ``downloader`` a callable ``(collection, folder)`` that writes the archive into the
    folder (tests give a fake one); ``command`` a shell-like template instead (``{slug}``, ``{dest}``);
    neither: the Kaggle client (:func:`choose_downloader`). ``keep_archive``: keep a downloaded archive
    after a complete unpack (an ``archive`` the user gave is never deleted). Returns the record written
    to ``out/.dfig_fetch.json`` (``complete``, ``tree``, counts). Raises :class:`FetchUnavailable`.
    """
    coll, out = collection(name), Path(out).expanduser()
    done = io.load_json(out / RECORD) if (out / RECORD).is_file() else {}
    if done.get("complete") and done.get("collection") == coll.name and (out / coll.tree).is_dir():
        print(f"fetch: {out / coll.tree} is complete already ({done.get('members', '?')} files)")
        return done
    given = Path(archive).expanduser() if archive else None
    if given is None:
        dl = out / DOWNLOAD_DIR
        given = find_archive(coll, dl)
        if given is None or (dl / f"{coll.archive}.kaggle-partial").exists():
            get = downloader or choose_downloader(coll, out, command)
            warn_disk(coll, out)
            dl.mkdir(parents=True, exist_ok=True)
            get(coll, dl)
            given = find_archive(coll, dl)
            if given is None:
                raise ValueError(f"the download wrote no {coll.archive} (nor one .zip) into {dl}")
    if not given.is_file():
        raise FileNotFoundError(f"--archive {given}: no such file")
    print(f"fetch: unpacking {given} into {out} ...", flush=True)
    rec = {"collection": coll.name, "slug": coll.slug, "archive": given.name, "archive_bytes": given.stat().st_size,
           **unpack(given, out), "tree": coll.tree, "complete": True,
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    io.save_json(rec, out / RECORD)
    if not archive and not keep_archive:
        given.unlink()
        rec["archive_deleted"] = True
    return rec


def warn_disk(coll: Collection, out: Path) -> None:
    """Print a warning when the disk under ``out`` has less room than the download and its unpacking."""
    probe = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free / 1e9
    need = coll.download_gb + coll.unpacked_gb
    if free < need:
        print(f"fetch: WARNING: {free:.1f} GB free under {probe}, about {need:.0f} GB needed", flush=True)


__all__ = [
    "DOWNLOAD_DIR",
    "RECORD",
    "Downloader",
    "FetchUnavailable",
    "choose_downloader",
    "command_downloader",
    "fetch",
    "find_archive",
    "kaggle_command",
    "kaggle_credentials",
    "kaggle_downloader",
    "member_path",
    "steps",
    "unpack",
    "warn_disk",
]
