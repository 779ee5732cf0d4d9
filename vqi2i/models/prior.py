"""The content prior: a decoder-only transformer over a grid of content tokens, read in raster order.

The model sees a *window* of at most `block_rows x block_cols` cells of the token grid, flattened row by
row. Sequence slot p is about cell p of the window: it carries the token of cell p-1 (a start token for
p = 0) plus the row and column embeddings of cell p, and it predicts the token of cell p. Rows and
columns are counted from the window's top-left corner, so the same weights read a window anywhere in a
grid larger than the context: that is what makes sliding-window sampling possible.

A `KVCache` keeps each layer's keys and values, so that during sampling a new slot costs one position
instead of the whole window (see `vqi2i.sampling`). Attention goes through `kernels.attention` (training,
prefill) and `kernels.decode_attention` (one-token steps).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqi2i_kernels import attention, decode_attention


@dataclass
class PriorConfig:
    vocab_size: int  # codebook size K of the codec the tokens come from
    block_rows: int  # the largest window the prior reads: block_rows x block_cols cells
    block_cols: int
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for name in ("vocab_size", "block_rows", "block_cols", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def block_size(self) -> int:
        return self.block_rows * self.block_cols

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Preallocated keys and values of every layer for `batch` sequences that all have the same length."""

    def __init__(self, cfg: PriorConfig, batch: int, max_len: int, device, dtype=torch.float32):
        head_dim = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0  # slots already written

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is None:
            y = attention(q, k, v, causal=True)
        else:
            start, end = cache.length, cache.length + T
            cache.k[layer, :, :, start:end] = k
            cache.v[layer, :, :, start:end] = v
            q = q.to(cache.k.dtype)
            if T == 1:  # one new slot per sequence: the decode path
                y = decode_attention(q[:, :, 0], cache.k[layer], cache.v[layer], lengths)[:, :, None]
            else:  # a chunk of slots after the cached ones (prefill): causal, aligned to the end
                y = attention(q, cache.k[layer, :, :, :end], cache.v[layer, :, :, :end], causal=True)
            y = y.to(x.dtype)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x, cache=None, layer=0, lengths=None):
        x = x + self.attn(self.ln_1(x), cache, layer, lengths)
        return x + self.mlp(self.ln_2(x))


class ContentPrior(nn.Module):
    """GPT over content tokens; `forward` returns next-token logits for each sequence slot."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.start_token = cfg.vocab_size  # an extra embedding row, never predicted
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, cfg.n_embd)
        self.row_emb = nn.Embedding(cfg.block_rows, cfg.n_embd)
        self.col_emb = nn.Embedding(cfg.block_cols, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, max_len: int | None = None, dtype=None) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch, max_len or self.cfg.block_size, p.device, dtype or p.dtype)

    def forward(self, inputs: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """inputs [B, T] token ids (start token allowed), rows/cols [T] window coordinates of the cells
        the slots predict -> logits [B, T, vocab_size] ([B, 1, vocab_size] with last_only). With a cache,
        the T slots follow the cached ones and their keys/values are appended."""
        B, T = inputs.shape
        if cache is not None and cache.length + T > cache.max_len:
            raise ValueError(f"KV cache holds {cache.max_len} slots; {cache.length} + {T} do not fit")
        x = self.drop(self.tok_emb(inputs) + self.row_emb(rows) + self.col_emb(cols))
        lengths = None
        if cache is not None and T == 1:
            lengths = torch.full((B,), cache.length + 1, dtype=torch.long, device=inputs.device)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, lengths)
        if cache is not None:
            cache.length += T
        if last_only:
            x = x[:, -1:]
        return self.head(self.ln_f(x))

    def window_logits(self, window: torch.Tensor) -> torch.Tensor:
        """Full recompute over a window of tokens [B, R, C] -> logits [B, R*C, vocab_size] for every cell."""
        inputs, rows, cols = window_sequence(window, self.start_token)
        return self(inputs, rows, cols)

    def loss(self, window: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over all cells of a batch of windows [B, R, C]."""
        logits = self.window_logits(window)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), window.reshape(-1))


def window_positions(rows: int, cols: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of every cell of a rows x cols window, in raster order."""
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    return r, c


def window_sequence(window: torch.Tensor, start_token: int) -> tuple[torch.Tensor, ...]:
    """Tokens [B, R, C] -> (inputs [B, R*C]: start token then cells 0..R*C-2, rows [R*C], cols [R*C])."""
    B, R, C = window.shape
    flat = window.reshape(B, R * C)
    start = torch.full((B, 1), start_token, dtype=flat.dtype, device=flat.device)
    inputs = torch.cat([start, flat[:, :-1]], dim=1)
    rows, cols = window_positions(R, C, window.device)
    return inputs, rows, cols
