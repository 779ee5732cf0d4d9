"""What `vqi2i train` and `vqi2i train-prior` share: a config file and key=value overrides from the command
line, or the config of a run to resume, and the run folder to train in."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from vqi2i.checkpoint import resolve_checkpoint
from vqi2i.errors import UserError
from vqi2i.train.run import prepare_run


def config_and_run_dir(
    args: argparse.Namespace,
    load: Callable[[Path | str, list[str]], DictConfig],
    missing_config: str,
    check_new: Callable[[], None] | None = None,
    check_resume: Callable[[Path], None] | None = None,
) -> tuple[DictConfig, Path]:
    """(config, run folder) from CONFIG|key=value items, --device, --seed, --out, --resume and --overwrite.

    A new run loads CONFIG with `load` and starts an empty run folder (default runs/<name>); a resumed run
    reloads the config saved with its latest checkpoint, with the overrides on top. `missing_config` is the
    error for a new run without a config file; `check_new()` and `check_resume(run_dir)` are the command's
    own checks, made before the config is read."""
    config = [i for i in args.items if "=" not in i]
    overrides = [i for i in args.items if "=" in i]
    if len(config) > 1:
        raise UserError(f"give one config file, got {len(config)}: {' '.join(config)}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.resume:
        if config:
            raise UserError("with --resume the config comes from the run; give only key=value overrides")
        run_dir = args.resume
        prepare_run(run_dir, resume=True, overwrite=False)
        if check_resume is not None:
            check_resume(run_dir)
        return load(resolve_checkpoint(run_dir) / "config.yaml", overrides), run_dir
    if not config:
        raise UserError(missing_config)
    if check_new is not None:
        check_new()
    cfg = load(config[0], overrides)
    run_dir = args.out or Path("runs") / cfg.name
    prepare_run(run_dir, resume=False, overwrite=args.overwrite)
    return cfg, run_dir
