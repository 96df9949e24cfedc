"""``python -m dfig.stages.lnp`` (same as ``python -m dfig.lnp``)."""

import sys

from dfig.stages.lnp.cli import main

sys.exit(main())
