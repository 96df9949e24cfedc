"""Command line of ``dfig.stages.predict`` (``python -m dfig.predict --help``); the code lives there."""

import sys

from dfig.stages.predict import main

if __name__ == "__main__":
    sys.exit(main())
