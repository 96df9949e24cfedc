"""Command line of ``dfig.stages.train`` (``python -m dfig.train --help``); the code lives there."""

import sys

from dfig.stages.train import main

if __name__ == "__main__":
    sys.exit(main())
