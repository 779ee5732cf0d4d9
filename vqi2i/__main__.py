"""`python -m vqi2i ...`: the `vqi2i` command (what `torchrun -m vqi2i train ...` starts)."""

import sys

from vqi2i.cli import main

sys.exit(main())
