"""Command line of ``dfig.stages.segment`` (``python -m dfig.segment --help``); the code lives there."""

import sys

from dfig.stages.segment import main

if __name__ == "__main__":
    sys.exit(main())
