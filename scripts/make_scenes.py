"""Write the synthetic summer/winter scenes data set; the same as `vqi2i data scenes`.

    python scripts/make_scenes.py data/scenes --n-train 200 --n-test 20 --size 64 --seed 0
"""

from __future__ import annotations

import argparse
import sys

from vqi2i.data.scenes import add_arguments, run
from vqi2i.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"make_scenes: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
