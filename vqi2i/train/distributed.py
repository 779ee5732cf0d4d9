"""Distributed data-parallel training (PyTorch's DDP, launched by `torchrun`) for both trainers.

`torchrun --nproc_per_node=N -m vqi2i train CONFIG ...` starts N processes with RANK, WORLD_SIZE and
LOCAL_RANK in their environment; `distributed_session` turns that into a process group (nccl on CUDA,
gloo on the CPU) and the device of this process (the GPU of its LOCAL_RANK). Without those variables,
or with WORLD_SIZE=1, everything here is a no-op and a run computes exactly what it did before.

What the trainers rely on:
  * every collective here is called by every rank in the same order (they are all in code paths that
    depend only on the step and the config, never on the data a rank holds);
  * rank 0 alone writes files (`DistContext.is_main`);
  * modules are wrapped with `wrap` (DDP without buffer broadcasts: the codebook's usage counts are
    per-rank and summed on purpose), and batch norm becomes `GlobalBatchNorm2d`, whose statistics
    are those of the global batch, so N processes with batch B compute what one process with batch
    N x B computes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel as DDP

from vqi2i.device import select_device
from vqi2i.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: rank, number of processes, rank on its node, backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def env_context() -> DistContext:
    """The job as torchrun describes it in the environment (no process group is made here)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise UserError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    return DistContext(rank, world, local, None)


def device_for(name: str | None, ctx: DistContext) -> torch.device:
    """The device of this process. One process: `select_device`. Under torchrun: the GPU of LOCAL_RANK
    ('auto' or 'cuda'), or the CPU."""
    if not ctx.enabled:
        return select_device(name)
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        raise UserError("distributed training on MPS is not supported; use --device cpu under torchrun")
    if not name.startswith("cuda"):
        select_device(name)  # names the unknown device
    if not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available on this machine "
                        "(use --device cpu to train on CPU processes with the gloo backend)")
    if name != "cuda":
        raise UserError(f"under torchrun each process uses the GPU of its LOCAL_RANK; give --device cuda "
                        f"(or auto), not {name}")
    n_gpus = torch.cuda.device_count()
    if ctx.local_rank >= n_gpus:
        raise UserError(f"process LOCAL_RANK={ctx.local_rank} has no GPU: this node has {n_gpus}; start at most "
                        f"{n_gpus} processes per node (torchrun --nproc_per_node={n_gpus})")
    return torch.device("cuda", ctx.local_rank)


def backend_for(device: torch.device) -> str:
    """nccl for CUDA, gloo for the CPU; a backend this torch build lacks is a UserError."""
    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed; distributed training is not available")
    backend = "nccl" if device.type == "cuda" else "gloo"
    available = dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()
    if not available:
        what = "CUDA" if backend == "nccl" else "CPU"
        raise UserError(f"the {backend} backend (needed for {what} processes) is not available in this PyTorch build")
    return backend


@contextmanager
def distributed_session(device_name: str | None) -> Iterator[tuple[DistContext, torch.device]]:
    """(context, device) for a training run. Under torchrun, joins (or reuses) the process group and
    leaves it at the end if it made it; in one process yields SINGLE and `select_device(device_name)`."""
    ctx = env_context()
    device = device_for(device_name, ctx)
    if not ctx.enabled:
        yield SINGLE, device
        return
    backend = backend_for(device)
    created = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend, timeout=timedelta(minutes=30))
        except (RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot join the distributed job ({backend}): {first}") from None
        created = True
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), ctx.local_rank, backend)
    try:
        yield ctx, device
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


# -- collectives (no-ops in one process) -----------------------------------------------------------------


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_same_config(ctx: DistContext, config_yaml: str) -> None:
    """Every rank must train the same config; the first key on which a rank differs from rank 0 is named."""
    if not ctx.enabled:
        return
    texts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(texts, config_yaml)
    reference = _flat(yaml.safe_load(texts[0]) or {})
    for rank, text in enumerate(texts[1:], start=1):
        if text == texts[0]:
            continue
        other = _flat(yaml.safe_load(text) or {})
        keys = sorted(k for k in reference.keys() | other.keys() if reference.get(k) != other.get(k))
        k = keys[0] if keys else "?"
        raise UserError(f"the processes disagree on the config: rank {rank} has {k}={other.get(k)!r}, rank 0 "
                        f"{reference.get(k)!r}; give every process the same config and overrides")


def all_reduce_sum_(ctx: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over the ranks, in place."""
    if ctx.enabled:
        dist.all_reduce(tensor)
    return tensor


def mean_over_ranks(ctx: DistContext, values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the ranks (keys must agree; they come from the same code path)."""
    if not ctx.enabled or not values:
        return dict(values)
    keys = list(values)  # the same order on every rank: the same code path filled it
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


def gather_cat(ctx: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """The ranks' tensors (same shape on each) concatenated along dim 0 in rank order."""
    if not ctx.enabled:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def broadcast_(ctx: DistContext, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    if ctx.enabled:
        dist.broadcast(tensor, src)
    return tensor


def broadcast_int(ctx: DistContext, value: int, device: torch.device, src: int = 0) -> int:
    if not ctx.enabled:
        return value
    t = torch.tensor([int(value)], dtype=torch.long, device=device)
    dist.broadcast(t, src)
    return int(t.item())


def sync_rng(ctx: DistContext, device: torch.device) -> None:
    """Give every rank rank 0's RNG streams (the CPU one, and this process's CUDA device's)."""
    if not ctx.enabled:
        return
    state = [torch.get_rng_state()]
    if device.type == "cuda":
        state.append(torch.cuda.get_rng_state(device))
    dist.broadcast_object_list(state, 0)
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)


def check_rng_agrees(ctx: DistContext) -> None:
    """A consistency check of the trainers: streams that must agree do (a bug otherwise, not a user error)."""
    if not ctx.enabled:
        return
    mine = torch.get_rng_state()
    states: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(states, mine)
    if any(not torch.equal(s, states[0]) for s in states):
        raise RuntimeError("internal error: the ranks' random number streams diverged")


def gather_objects(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (on every rank)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def main_first(ctx: DistContext, fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0, then on the others (e.g. build a cache that the others then read). A UserError
    on rank 0 is raised on every rank with the same message, so no rank waits for ever."""
    if not ctx.enabled:
        return fn()
    if ctx.is_main:
        try:
            result = fn()
        except UserError as e:
            dist.broadcast_object_list([str(e)], 0)
            raise
        dist.broadcast_object_list([None], 0)
        return result
    msg: list[Any] = [None]
    dist.broadcast_object_list(msg, 0)
    if msg[0] is not None:
        raise UserError(msg[0])
    return fn()


# -- modules -------------------------------------------------------------------------------------------


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP around `module` (itself in one process). Buffers are not broadcast: each rank keeps its own
    (the codebook's usage counts), and what must agree is kept equal by the trainer."""
    if not ctx.enabled:
        return module
    with warnings.catch_warnings():  # newer torch renames broadcast_buffers; False keeps buffers rank-local
        warnings.simplefilter("ignore", FutureWarning)
        return DDP(module, device_ids=[device.index] if device.type == "cuda" else None,
                   broadcast_buffers=False, find_unused_parameters=False)


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(sum) with a gradient: d(sum over ranks)/d(own input) -> the gradients summed over ranks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the global batch: in training under a process group the mean and variance are
    reduced over all ranks (differentiably), so the result equals one process's batch norm over the
    ranks' concatenated batches. Same parameters and buffers as nn.BatchNorm2d (checkpoints unchanged);
    outside training or in one process it is nn.BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        # one reduction of [sum, sum of squares, count] in float64 (no cancellation worth the name)
        xd, dims, c = x.double(), (0, 2, 3), x.shape[1]
        count = xd.new_full((1,), float(x.numel() // c))
        total = _SumOverRanks.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0.0).float()
        mean = mean.float()
        centred = x.float() - mean[None, :, None, None]
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean), momentum)
                unbiased = var.detach() * n / torch.clamp(n - 1, min=1)
                self.running_var.lerp_(unbiased.to(self.running_var), momentum)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Turn every nn.BatchNorm2d in `module` into a GlobalBatchNorm2d (in place; same tensors)."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GlobalBatchNorm2d
    return module
