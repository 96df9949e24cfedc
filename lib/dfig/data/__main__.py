"""``python -m dfig.data``: see :mod:`dfig.data.cli`."""

import sys

from dfig.data.cli import main

sys.exit(main())
