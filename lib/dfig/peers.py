"""Command line of ``dfig.stages.peers`` (``python -m dfig.peers --help``); the code lives there."""

import sys

from dfig.stages.peers import main

if __name__ == "__main__":
    sys.exit(main())
