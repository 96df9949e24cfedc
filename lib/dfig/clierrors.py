"""User errors in the command-line tools: one line on stderr naming the problem and the fix, exit code 2.

``python -m dfig.train|predict|lnp`` catch the errors a user causes (a missing or unreadable input, an
output folder they cannot write, a bad flag, a corrupt checkpoint, a bad file under ``strict``) and
print them with :func:`fail`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

#: exception types that are the user's to fix (dfig raises ValueError/OSError subclasses for bad input)
USER_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)

_OS_HINTS = {
    errno.ENOENT: "no such file or folder: check the path",
    errno.EACCES: "permission denied: fix its permissions or choose another folder",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.EROFS: "read-only file system: choose a folder you can write to",
    errno.ENOSPC: "no space left on the device: free space or choose another folder",
    errno.ENOTDIR: "a path component is a file, not a folder: check the path",
    errno.EISDIR: "is a folder, not a file: check the path",
}


def one_line(e: BaseException) -> str:
    """The error as one line; a bare ``OSError`` (``[Errno 13] ...: 'path'``) gets the path and a fix.

    Arguments: ``e`` the exception. Returns: the message, whitespace (newlines) collapsed.
    """
    if (
        isinstance(e, OSError)
        and e.errno in _OS_HINTS
        and e.filename is not None
        and str(e).startswith("[Errno")
    ):
        return f"{e.filename}: {_OS_HINTS[e.errno]}"
    return " ".join(str(e).split()) or type(e).__name__


def fail(e: BaseException) -> int:
    """Print ``error: <one line>`` on stderr (as ``dfig.stages.segment`` does); return the exit code 2.

    Arguments: ``e`` the user error. Returns: 2.
    """
    print(f"error: {one_line(e)}", file=sys.stderr)
    return 2


def check_writable(folder: str | os.PathLike[str], flag: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any work starts.

    Arguments: ``folder`` the output folder; ``flag`` the option that names it (for the message).
    Returns: the folder. Raises ``PermissionError`` naming the folder and ``flag``.
    """
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".dfig_write_probe_"):
            pass
    except OSError as e:
        raise PermissionError(f"cannot write to {p} ({e.strerror or e}): choose a writable {flag}") from e
    return p


def output_error(e: BaseException, out: str | os.PathLike[str], flag: str) -> BaseException:
    """``e`` itself, or, for a failed write under ``out``, a ``PermissionError`` naming ``flag``.

    Arguments: ``e`` the error; ``out`` the output folder; ``flag`` the option that names it.
    Returns: the exception to report with :func:`fail`.
    """
    if not (isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC)):
        return e
    target = Path(str(e.filename or out)).resolve()
    root = Path(out).resolve()
    if target == root or root in target.parents or target in root.parents:
        return PermissionError(f"cannot write to {out} ({e.strerror or e}): choose a writable {flag}")
    return e


__all__ = ["USER_ERRORS", "check_writable", "fail", "one_line", "output_error"]
