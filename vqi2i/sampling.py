"""Sampling content-token grids from the prior: one KV-cached sampler for generation, extension, completion.

`sample_grid` fills the unknown cells of a token grid. Grids up to the prior's context are one window;
larger grids are covered by overlapping windows (a sliding window) placed in raster order, each cell
sampled in the first window that contains it, conditioned on everything before it in that window's raster
order (known cells, and cells sampled in this or earlier windows). Inside a window the KV cache is reused:
runs of already-known cells are fed as one chunk, every unknown cell costs one cached step. When the window
moves, its coordinates change, so the cache is rebuilt for the new window.

The known-cell mask is shared by the whole batch (one input image sampled several times, or several
inputs of one size with the same mask).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vqi2i.errors import UserError
from vqi2i.models.prior import ContentPrior, window_positions


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely tokens (1 = greedy, deterministic)
    top_p: float | None = None  # keep the smallest set of tokens whose probability reaches p

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UserError(f"top-k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top-p must be in (0, 1], got {self.top_p}")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus. logits: [B, V]."""
    if top_k is not None and top_k < logits.shape[-1]:
        values, indices = torch.topk(logits, top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, values)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # mass before this token already reaches p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.empty_like(logits).scatter(-1, order, sorted_logits)
    return logits


def sample_logits(logits: torch.Tensor, options: SamplingOptions,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of logits [B, V] -> [B] int64."""
    if options.top_k == 1:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / options.temperature, options.top_k, options.top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Offsets of windows of `window` cells covering `size` cells with the given stride; the last one is
    aligned to the end."""
    if size <= window:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def check_grid_fits(prior: ContentPrior, rows: int, cols: int, allow_window: bool) -> None:
    cfg = prior.cfg
    if (rows > cfg.block_rows or cols > cfg.block_cols) and not allow_window:
        raise UserError(
            f"a {rows}x{cols} token grid is larger than the prior's context of "
            f"{cfg.block_rows}x{cfg.block_cols}; use a sliding window (--window) to sample it"
        )


StepHook = Callable[[int, int, int, torch.Tensor], None]  # (window top, window left, cell, logits [B, V])


@torch.no_grad()
def sample_grid(
    prior: ContentPrior,
    grid: torch.Tensor,
    known: torch.Tensor | None = None,
    *,
    options: SamplingOptions | None = None,
    generator: torch.Generator | None = None,
    allow_window: bool = False,
    stride: tuple[int, int] | None = None,
    on_step: StepHook | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Fill the cells of `grid` [B, H, W] (int64) where `known` [H, W] is False; known cells are kept.

    Grids larger than the prior's context need `allow_window`; windows of the context size then move by
    `stride` (rows, cols), half the context by default. `on_step` sees the logits of every sampled cell.
    Returns a new grid.
    """
    options = options or SamplingOptions()
    if grid.dim() != 3:
        raise ValueError(f"grid must be [B, H, W], got {tuple(grid.shape)}")
    B, H, W = grid.shape
    check_grid_fits(prior, H, W, allow_window)
    if known is None:
        known = torch.zeros(H, W, dtype=torch.bool)
    if tuple(known.shape) != (H, W):
        raise ValueError(f"known mask {tuple(known.shape)} does not match the grid {H}x{W}")
    device = next(prior.parameters()).device
    grid = grid.to(device=device, dtype=torch.long).clone()
    done = known.detach().to("cpu", torch.bool).clone()
    known_tokens = grid[:, done.to(device)]
    if known_tokens.numel() and (known_tokens.min() < 0 or known_tokens.max() >= prior.cfg.vocab_size):
        raise UserError(f"grid tokens must lie in [0, {prior.cfg.vocab_size})")

    R, C = min(H, prior.cfg.block_rows), min(W, prior.cfg.block_cols)
    stride_r, stride_c = stride or (max(1, R // 2), max(1, C // 2))
    if stride_r < 1 or stride_c < 1:
        raise UserError(f"window stride must be >= 1, got {stride_r}x{stride_c}")
    rows_pos, cols_pos = window_positions(R, C, device)
    cache = prior.new_cache(B, R * C)
    was_training = prior.training
    prior.eval()
    bar = tqdm(total=int((~done).sum()), desc="sampling", unit="tok", disable=not progress, leave=False)
    try:
        for top in window_starts(H, R, stride_r):
            for left in window_starts(W, C, stride_c):
                win_done = done[top : top + R, left : left + C].reshape(-1)
                unknown = (~win_done).nonzero()[:, 0].tolist()
                if not unknown:
                    continue
                # seq[:, p] is the input of slot p: the start token, then the window's cells in raster order
                seq = torch.empty(B, R * C + 1, dtype=torch.long, device=device)
                seq[:, 0] = prior.start_token
                seq[:, 1:] = grid[:, top : top + R, left : left + C].reshape(B, R * C)
                cache.reset()
                fed = 0
                for p in unknown:
                    chunk = slice(fed, p + 1)  # slots whose inputs are ready; the last one predicts cell p
                    logits = prior(seq[:, chunk], rows_pos[chunk], cols_pos[chunk], cache, last_only=True)[:, -1]
                    if on_step is not None:
                        on_step(top, left, p, logits)
                    token = sample_logits(logits, options, generator)
                    r, c = top + p // C, left + p % C
                    grid[:, r, c] = token
                    seq[:, p + 1] = token
                    done[r, c] = True
                    fed = p + 1
                    bar.update(1)
    finally:
        bar.close()
        prior.train(was_training)
    return grid


def generate_grids(prior: ContentPrior, n: int, rows: int, cols: int, **kwargs) -> torch.Tensor:
    """n new token grids of rows x cols, sampled from nothing."""
    device = next(prior.parameters()).device
    grid = torch.zeros(n, rows, cols, dtype=torch.long, device=device)
    return sample_grid(prior, grid, None, **kwargs)


def extend_right(prior: ContentPrior, grid: torch.Tensor, new_cols: int, **kwargs) -> torch.Tensor:
    """Append `new_cols` sampled columns to the right of grid [B, H, W]; the original cells are kept.
    A sliding window is used when the result is wider than the prior's context."""
    if new_cols < 1:
        raise UserError(f"the number of new columns must be >= 1, got {new_cols}")
    B, H, W = grid.shape
    wide = torch.zeros(B, H, W + new_cols, dtype=torch.long, device=grid.device)
    wide[:, :, :W] = grid
    known = torch.zeros(H, W + new_cols, dtype=torch.bool)
    known[:, :W] = True
    kwargs.setdefault("allow_window", True)
    return sample_grid(prior, wide, known, **kwargs)


KNOWN_REGIONS = ("quarter", "left", "top")


def known_region(kind: str, rows: int, cols: int) -> torch.Tensor:
    """The known cells for a completion: the top-left quarter, the left half or the top half."""
    known = torch.zeros(rows, cols, dtype=torch.bool)
    if kind == "quarter":
        known[: rows // 2, : cols // 2] = True
    elif kind == "left":
        known[:, : cols // 2] = True
    elif kind == "top":
        known[: rows // 2, :] = True
    else:
        raise UserError(f"unknown region {kind!r}; use one of {', '.join(KNOWN_REGIONS)}")
    return known


def complete_grid(prior: ContentPrior, grid: torch.Tensor, known: torch.Tensor, **kwargs) -> torch.Tensor:
    """Sample the unknown cells of grid [B, H, W]; every cell where known [H, W] is True is kept."""
    if bool(known.all()):
        raise UserError("nothing to complete: every token is known")
    return sample_grid(prior, grid, known, **kwargs)
