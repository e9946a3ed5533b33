"""``python -m kubespan``: the command line (see ``kubespan.cli``), behind the extra check of ``kubespan.entry``."""

import sys

from .entry import main

sys.exit(main())
