"""Run utilities shared by the trainers: seeding, RNG state, LR schedule, batches, the metrics log, when to save
and saving on Ctrl-C (`vqi2i.train.run` puts them together around a trainer's loop; the device and threads are
chosen in `vqi2i.device`)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqi2i.errors import UserError
from vqi2i.fileio import atomic_write_text


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_factor(step: int, max_steps: int, schedule: str, warmup: int = 0, min_ratio: float = 0.1) -> float:
    """Multiplier of the base learning rate at `step` (a pure function of the step, so resume is exact)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 if progress < 0.5 else (0.1 if progress < 0.75 else 0.01)  # "step"


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a permutation fixed by (seed, epoch), incomplete last batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def batches_from(
    dataset, batch_size: int, seed: int, start_step: int, num_workers: int = 0, *, rank: int = 0,
    world_size: int = 1, pin_memory: bool = False,
) -> Iterator[dict]:
    """Endless batches starting at global step `start_step`, epoch after epoch.

    Which samples a step sees depends only on (seed, world size, step), so a resumed run sees the same
    batches. With several processes each step's global batch of batch_size x world_size samples is cut
    into consecutive shards, and this rank gets shard `rank`; one process with the same global batch
    sees the same samples.
    """
    global_batch = batch_size * world_size
    per_epoch = len(dataset) // global_batch
    if per_epoch == 0:
        if world_size == 1:
            raise UserError(f"the data set has {len(dataset)} images, fewer than train.batch_size={batch_size}")
        raise UserError(f"the data set has {len(dataset)} images, fewer than one global batch: train.batch_size="
                        f"{batch_size} x {world_size} processes = {global_batch}")
    epoch, skip = divmod(start_step, per_epoch)
    lo, hi = rank * batch_size, (rank + 1) * batch_size
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = [b[lo:hi] for b in epoch_batches(len(dataset), global_batch, seed, epoch)[skip:]]
        # the loader's own generator: creating an iterator must not draw from the global RNG
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, generator=g,
                                             pin_memory=pin_memory)
        yield from loader
        epoch, skip = epoch + 1, 0


class MetricsLog:
    """metrics.jsonl in the run folder; on resume, entries after the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and path.exists():
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [line for line in lines if json.loads(line)["step"] <= resume_step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        elif resume_step is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def checkpoint_due(step: int, every: int, end: int) -> bool:
    """Save every `every` steps and at the last step of this run (`end`: max_steps or --stop-at)."""
    return step % int(every) == 0 or step == end


@contextmanager
def saving_on_interrupt(bar, save: Callable[[], Path], current_step: Callable[[], int]) -> Iterator[None]:
    """Around a training loop: Ctrl-C saves a checkpoint and becomes a UserError saying how to continue;
    the progress bar is closed when the loop ends or is interrupted."""
    try:
        yield
    except KeyboardInterrupt:
        bar.close()
        ckpt = save()
        raise UserError(f"interrupted at step {current_step()}; saved {ckpt} (continue with --resume)") from None
    bar.close()
