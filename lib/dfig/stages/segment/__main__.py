"""``python -m dfig.stages.segment`` (same as ``python -m dfig.segment``)."""

import sys

from dfig.stages.segment.cli import main

sys.exit(main())
