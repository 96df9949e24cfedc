"""``python -m dfig.train`` (also ``python -m dfig.stages.train``): options from the command line -> :func:`train`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from dfig.stages.train.options import options_from_args
from dfig.stages.train.trainer import train

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfig.train --name N --dataroot LNPROOT --classes face --arch mobilev2 --train_mode 0``.

    Arguments: ``argv`` (default ``sys.argv[1:]``). Returns: the exit status. User errors (missing
    data, unwritable ``--checkpoints_dir``, a corrupt checkpoint, bad options, an incomplete stage)
    print one line and return 2.
    """
    from dfig.clierrors import USER_ERRORS, fail

    try:
        res = train(options_from_args(argv))
    except USER_ERRORS as e:
        return fail(e)
    if int(os.environ.get("RANK", "0")) == 0:
        keys = ("name", "epochs", "stopped_by", "best_epoch", "threshold", "total_minutes")
        print(json.dumps({k: res.get(k) for k in keys}, indent=2, default=str))
        for split in ("val", "test"):
            m = res.get(f"{split}_metrics")
            if m:
                scores = ", ".join(f"{k} {m[k]:.4f}" for k in ("acc", "ap", "roc_auc", "eer") if k in m)
                print(f"{split}: {scores}")
    return 0
