"""``python -m pyrobust.experiment.clothing1m`` (also under ``torchrun -m``): the Clothing1M command."""

import sys

from pyrobust.experiment.clothing1m.command_line import main

sys.exit(main())
