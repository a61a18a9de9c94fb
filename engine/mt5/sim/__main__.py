"""``python -m engine.mt5.sim``: see engine.mt5.sim.cli."""

import sys

from engine.mt5.sim.cli import main

sys.exit(main())
