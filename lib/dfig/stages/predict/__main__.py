"""``python -m dfig.stages.predict`` (same as ``python -m dfig.predict``)."""

import sys

from dfig.stages.predict.cli import main

sys.exit(main())
