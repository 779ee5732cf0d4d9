"""`vqi2i train CONFIG [key=value ...] [--out RUN]` and `vqi2i train --resume RUN [key=value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from vqi2i.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a translator",
        description="Train a VQ-I2I translator. Settings come from CONFIG (YAML) and key=value overrides, "
        "e.g. `vqi2i train configs/scenes64.yaml train.max_steps=2000 data.root=data/scenes`.",
    )
    p.add_argument("items", nargs="*", metavar="CONFIG|key=value", help="config file, then overrides")
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in RUN exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (overrides train.device)")
    p.add_argument("--seed", type=int, help="overrides train.seed")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="save and stop at STEP; continue later with --resume")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqi2i.device import set_threads  # start-up: the CLI imports this module; torch loads only in run
    from vqi2i.train.cli_common import config_and_run_dir
    from vqi2i.train.distributed import env_context
    from vqi2i.train.trainer import train

    set_threads(args.threads)
    cfg, run_dir = config_and_run_dir(args, load_config, "give a config file, e.g. `vqi2i train configs/tiny.yaml`")
    last = train(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress, stop_at=args.stop_at)
    if env_context().rank != 0:
        return 0
    print(f"trained to step {last.get('step')} in {run_dir}; image grids in {run_dir / 'samples'}")
    return 0
