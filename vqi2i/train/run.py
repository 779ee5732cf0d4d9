"""The run skeleton of both trainers (`vqi2i train`, `vqi2i train-prior`), written once: the run folder, the
start (the same config on every rank, TensorBoard checked, the RNGs seeded), resuming from the latest checkpoint
with its world-size note, the metrics log and TensorBoard, checkpoints on schedule and on Ctrl-C. Each trainer
keeps its own loop, in its order, and calls in here around it (docs/architecture.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from vqi2i.checkpoint import has_checkpoint, load_trainer_state, load_weights, resolve_checkpoint, save_checkpoint
from vqi2i.config import to_yaml
from vqi2i.errors import UserError
from vqi2i.train.distributed import DistContext, check_same_config, env_context
from vqi2i.train.runtime import MetricsLog, rng_state, saving_on_interrupt, seed_everything, set_rng_state
from vqi2i.train.tensorboard import TensorBoardLog, tensorboard_wanted


def prepare_run(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless asked; resuming needs a checkpoint."""
    if resume:
        if not has_checkpoint(run_dir):
            raise UserError(f"cannot resume: {run_dir} holds no checkpoint (checkpoints/latest)")
        return
    if env_context().rank != 0:  # under torchrun rank 0 alone checks, clears and writes the run folder
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UserError(f"run folder {run_dir} is not empty; pass --resume to continue it or --overwrite")
        shutil.rmtree(run_dir)


def begin(cfg: DictConfig, ctx: DistContext) -> bool:
    """Before a trainer builds anything: every rank has the same config, the tensorboard package is there if
    train.tensorboard asks for it, and the global RNGs are seeded. Returns whether to write TensorBoard files."""
    check_same_config(ctx, to_yaml(cfg))
    use_tb = tensorboard_wanted(cfg.train.tensorboard)
    seed_everything(int(cfg.train.seed))
    return use_tb


@dataclass
class Resumed:
    """What a checkpoint gave back besides the weights, optimizer states and RNG state it restored."""

    step: int
    world_size: int  # the number of processes that trained it
    trainer_state: dict[str, Any]  # trainer.pt, for what a trainer keeps of its own


class Run:
    """A run folder and what a checkpoint in it holds: `modules` ({file stem: module}, e.g. "model" ->
    model.safetensors) and `optimizers` ({key in trainer.pt: optimizer}), with the RNG state, the epoch
    (step // per_epoch) and `fields` in state.json. Under DDP `sync()` runs a trainer's collectives before a
    save, on every rank, and returns what it adds to trainer.pt; rank 0 alone writes."""

    def __init__(
        self, cfg: DictConfig, run_dir: Path, ctx: DistContext, *, modules: dict[str, torch.nn.Module],
        optimizers: dict[str, torch.optim.Optimizer], per_epoch: int, tensorboard: bool,
        sync: Callable[[], dict[str, Any]] | None = None, fields: dict[str, Any] | None = None,
    ):  # fmt: skip
        self.cfg, self.dir, self.ctx = cfg, Path(run_dir), ctx
        self.modules, self.optimizers, self.per_epoch = modules, optimizers, per_epoch
        self.sync, self.fields = sync, fields or {}
        self.world = ctx.world_size
        self.global_batch = int(cfg.train.batch_size) * self.world
        self.use_tb = tensorboard
        self.log: MetricsLog | None = None
        self.tb = TensorBoardLog(None)

    def resume(self, device: torch.device) -> Resumed:
        """Load the latest checkpoint into the modules and optimizers and restore the RNG state; note when it was
        trained on another number of processes."""
        ckpt = resolve_checkpoint(self.dir)
        for stem, module in self.modules.items():
            load_weights(module, ckpt / f"{stem}.safetensors", device)
        trainer_state, state = load_trainer_state(ckpt)
        for key, opt in self.optimizers.items():
            opt.load_state_dict(trainer_state[key])
        set_rng_state(trainer_state["rng"])
        resumed = Resumed(int(state["step"]), int(state.get("world_size", 1)), trainer_state)
        if resumed.world_size != self.world and self.ctx.is_main:
            print(f"note: {self.dir} was trained on {resumed.world_size} process(es) and resumes on {self.world}: "
                  f"the global batch is now {self.global_batch} and the data order from step {resumed.step} on "
                  "differs from an uninterrupted run (resume with the same number of processes to continue exactly)")
        return resumed

    def open_logs(self, step: int, resumed: bool) -> None:
        """The run folder with samples/, metrics.jsonl and TensorBoard's event files (rank 0), from `step` on:
        a resumed run drops what was logged after its checkpoint."""
        if self.ctx.enabled and self.ctx.is_main:
            print(f"distributed training: {self.world} processes ({self.ctx.backend}), train.batch_size="
                  f"{int(self.cfg.train.batch_size)} per process, global batch {self.global_batch}")
        if not self.ctx.is_main:
            return
        (self.dir / "samples").mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.dir / "metrics.jsonl", resume_step=step if resumed else None)
        self.tb = TensorBoardLog(self.dir if self.use_tb else None, resume_step=step if resumed else None)
        if self.tb.enabled:
            self.tb.text("config", to_yaml(self.cfg), step)
            print(f"TensorBoard: {self.tb.command()}")

    def write(self, record: dict[str, Any], step: int) -> None:
        """A line of metrics.jsonl and its TensorBoard scalars (rank 0; the others have nothing to write)."""
        if self.log is not None:
            self.log.write(record)
        self.tb.scalars(record, step)

    def sample_sheet(self, step: int, draw: Callable[[Path], Any]) -> Any:
        """`draw(path)` writes samples/step-N.png (rank 0), which goes to TensorBoard too; returns what it returns."""
        path = self.dir / "samples" / f"step-{step:07d}.png"
        result = draw(path)
        self.tb.image("samples", path, step)
        return result

    def save(self, step: int) -> Path | None:
        """A checkpoint at `step`; every rank calls it under DDP, rank 0 writes it and gets its folder."""
        extra_trainer_state, extra_fields = {}, {}
        if self.ctx.enabled:
            extra_trainer_state = self.sync() if self.sync is not None else {}
            if not self.ctx.is_main:
                return None
            extra_fields = {"world_size": self.world, "global_batch": self.global_batch}
        trainer_state = {key: opt.state_dict() for key, opt in self.optimizers.items()}
        trainer_state.update(rng=rng_state(), **extra_trainer_state)
        return save_checkpoint(self.dir, step, self.cfg, self.modules, trainer_state,
                               {"epoch": step // self.per_epoch, **self.fields, **extra_fields},
                               keep=int(self.cfg.train.keep_checkpoints))

    @contextmanager
    def loop(self, step: int, progress: bool, current_step: Callable[[], int]) -> Iterator[tqdm]:
        """Around a trainer's loop: its progress bar (yielded), and TensorBoard closed at the end. Ctrl-C saves a
        checkpoint at `current_step()` and stops with a UserError saying how to continue; a distributed run
        saves only on schedule."""
        bar = tqdm(total=int(self.cfg.train.max_steps), initial=step, disable=not progress or not self.ctx.is_main,
                   desc=self.cfg.name, dynamic_ncols=True)
        save = (lambda: self.save(current_step())) if not self.ctx.enabled else (lambda: _no_save(current_step()))
        with saving_on_interrupt(bar, save, current_step), closing(self.tb):
            yield bar


def _no_save(step: int) -> Path:
    raise UserError(f"interrupted at step {step}; a distributed run saves only on schedule "
                    "(train.ckpt_every): continue from its last checkpoint with --resume")
