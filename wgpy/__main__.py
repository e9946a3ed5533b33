"""``python -m wgpy``: the daemon command line (see ``wgpy.cli``)."""

import sys

from .cli import main

sys.exit(main())
