"""``python -m kubespan``: the command line (see ``kubespan.cli``)."""

import sys

from .cli import main

sys.exit(main())
