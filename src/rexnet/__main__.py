"""``python -m rexnet`` = the ``rexnet`` command."""

import sys

from .cli import main

sys.exit(main())
