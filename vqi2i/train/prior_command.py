"""`vqi2i train-prior CONFIG --codec RUN [key=value ...]` and `vqi2i train-prior --resume RUN`."""

from __future__ import annotations

import argparse
from pathlib import Path

from vqi2i.config import load_prior_config
from vqi2i.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-prior",
        help="train the content prior (a GPT over content tokens) on a trained codec",
        description="Train a GPT prior over the content tokens of a trained translator (the codec). The codec's "
        "training images of both domains, and their mirror images, are encoded once into a token cache. "
        "E.g. `vqi2i train-prior configs/prior_scenes.yaml --codec runs/scenes64 train.max_steps=500`.",
    )
    p.add_argument("items", nargs="*", metavar="CONFIG|key=value", help="prior config file, then overrides")
    p.add_argument("--codec", type=Path, metavar="RUN", help="the translator run (or checkpoint) whose tokens to model")
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue the prior run in RUN exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (overrides train.device)")
    p.add_argument("--seed", type=int, help="overrides train.seed")
    p.add_argument("--stop-at", type=int, metavar="STEP", help="save and stop at STEP; continue later with --resume")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vqi2i.inference import is_prior_checkpoint  # start-up: the CLI imports this module; torch loads only in run
    from vqi2i.train.cli_common import config_and_run_dir
    from vqi2i.train.distributed import env_context
    from vqi2i.train.prior_trainer import train_prior

    def check_new() -> None:
        if args.codec is None:
            raise UserError("give the codec run the prior learns the tokens of: --codec RUN")

    def check_resume(run_dir: Path) -> None:
        if not is_prior_checkpoint(run_dir):
            raise UserError(f"{run_dir} is not a prior run (resume a translator with `vqi2i train --resume`)")

    cfg, run_dir = config_and_run_dir(
        args, load_prior_config,
        "give a prior config file, e.g. `vqi2i train-prior configs/prior_tiny.yaml --codec RUN`",
        check_new=check_new, check_resume=check_resume,
    )  # fmt: skip
    last = train_prior(cfg, run_dir, args.codec, resume=bool(args.resume), progress=not args.no_progress,
                       stop_at=args.stop_at)
    if env_context().rank != 0:
        return 0
    summary = f"trained to step {last.get('step')} in {run_dir}"
    if "val_bits_per_token" in last:
        summary += f"; validation {last['val_loss']:.4f} nats = {last['val_bits_per_token']:.4f} bits per token"
    print(summary + f"; sampled grids in {run_dir / 'samples'}")
    return 0
