"""`vqi2i data KIND ...`: build a data set. Each KIND lives in its own module and registers itself here."""

from __future__ import annotations

import argparse

from vqi2i.data.emoji import register_emoji
from vqi2i.data.glyphs import register_glyphs
from vqi2i.data.scenes import register_scenes

# each adds one `vqi2i data KIND` sub-parser (with its own `func`) to the `data` sub-parsers
DATA_COMMANDS = [
    register_scenes,  # vqi2i data scenes OUT
    register_glyphs,  # vqi2i data glyphs OUT
    register_emoji,   # vqi2i data emoji OUT
]


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "data",
        help="build a data set: synthetic scenes, CJK glyphs, colour emoji",
        description="Build a data set in the CycleGAN layout (trainA/ trainB/ testA/ testB/).",
    )
    kinds = p.add_subparsers(dest="data_command", metavar="KIND")
    for add in DATA_COMMANDS:
        add(kinds)

    def show_help(args: argparse.Namespace) -> int:  # `vqi2i data` alone
        p.print_help()
        return 2

    p.set_defaults(func=show_help)
    return p
