"""``python -m nexus.cli`` is the ``nexus`` command (the daemon re-executes itself this way)."""

import sys

from nexus.cli import main

sys.exit(main())
