"""A local worker process: execute one run and write its result (``python -m dfig.pipeline.worker SPEC OUT``).

SPEC is the run's JSON (:func:`dfig.pipeline.execute.make_spec`), OUT where the result JSON goes
(``{"ok", "entry", "host"}``, written atomically). The exit code is 0 whether the notebook failed or
not (the result says which); anything else means the worker itself broke.
"""

from __future__ import annotations

import json
import sys

from dfig import io
from dfig.pipeline.execute import run_spec


def main(argv: list[str] | None = None) -> int:
    """Run the spec file ``argv[0]`` and write the result to ``argv[1]``. Returns: the exit code (0)."""
    spec_file, out_file = argv if argv is not None else sys.argv[1:3]
    with open(spec_file, encoding="utf-8") as f:
        spec = json.load(f)
    io.save_json(run_spec(spec), out_file)
    return 0


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
