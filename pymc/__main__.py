"""``python -m pymc ...`` is the ``pymc`` command."""

import sys

from .cli import main

sys.exit(main())
