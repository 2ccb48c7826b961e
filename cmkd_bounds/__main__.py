"""``python -m cmkd_bounds ...`` is the ``cmkd-bounds`` command (``torchrun -m cmkd_bounds train ...``)."""

import sys

from cmkd_bounds.app.cli import main

sys.exit(main())
