"""``python -m pyrobust.cli``: the ``pyrobust`` command."""

import sys

from pyrobust.cli import main

sys.exit(main())
