"""``python -m pyrobust``: the ``pyrobust`` command."""

import sys

from pyrobust.cli import main

sys.exit(main())
