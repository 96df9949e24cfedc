"""``python -m dfig.weights``: the table of official files (:func:`dfig.weights.cli.main`)."""

import sys

from dfig.weights.cli import main

if __name__ == "__main__":
    sys.exit(main())
