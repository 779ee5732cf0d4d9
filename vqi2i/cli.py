"""The `vqi2i` command. Each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from vqi2i.errors import UserError

# module path -> each module defines `register(subparsers)`; the parser it adds sets `func`.
COMMAND_MODULES = [
    "vqi2i.train.command",        # train
    "vqi2i.apps.translate",       # translate
    "vqi2i.apps.encode",          # encode
    "vqi2i.apps.info",            # info
    "vqi2i.data.command",         # data scenes | data glyphs | data emoji
    "vqi2i.eval.command",         # eval, train-classifier
    "vqi2i.train.prior_command",  # train-prior
    "vqi2i.apps.generate",        # generate
    "vqi2i.apps.extend",          # extend
    "vqi2i.apps.complete",        # complete
    "vqi2i.apps.interpolate",     # interpolate
    "vqi2i.apps.demo",            # demo
    "vqi2i.apps.models",          # models
    "vqi2i.apps.webapp",          # app
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqi2i", description="Vector-quantized image-to-image translation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `vqi2i train CONFIG --out RUN key=value`: overrides may also come after the options
    if extra and hasattr(args, "items") and all("=" in e and not e.startswith("-") for e in extra):
        args.items = [*args.items, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except UserError as e:
        print(f"vqi2i {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vqi2i {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - turn known user-caused OS errors into one line
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)) and not os.environ.get(
            "VQI2I_DEBUG"
        ):
            print(f"vqi2i {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
