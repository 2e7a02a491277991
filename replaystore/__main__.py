"""``python -m replaystore`` is the ``replaystore`` command."""

import sys

from replaystore.cli import main

sys.exit(main())
