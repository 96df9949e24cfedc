"""Command line of ``dfig.stages.lnp`` (``python -m dfig.lnp --help``); the code lives there."""

import sys

from dfig.stages.lnp import main

if __name__ == "__main__":
    sys.exit(main())
