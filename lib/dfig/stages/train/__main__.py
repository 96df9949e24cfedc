"""``python -m dfig.stages.train`` (same as ``python -m dfig.train``)."""

import sys

from dfig.stages.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
