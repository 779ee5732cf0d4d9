"""One place that decides which implementation runs."""

from __future__ import annotations

import os

import torch

from kernels.reference import attention_torch, codebook_lookup_torch, decode_attention_torch


def _backend(t: torch.Tensor) -> str:
    mode = os.environ.get("VQI2I_KERNELS", "auto").lower()
    if mode not in ("auto", "torch", "triton"):
        raise ValueError(f"VQI2I_KERNELS={mode!r}: use auto, torch or triton")
    if mode == "auto":
        return "triton" if t.is_cuda else "torch"
    return mode


def codebook_lookup(z: torch.Tensor, codebook: torch.Tensor, *, metric: str = "l2"):
    """Nearest code per row: z [N, D], codebook [K, D] -> (indices [N] int64, distances [N] fp32)."""
    return codebook_lookup_torch(z, codebook, metric=metric)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """Scaled dot-product attention over [B, H, T, Dh]."""
    return attention_torch(q, k, v, causal=causal)


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor):
    """KV-cached decode step: q [B, H, Dh] against k/v caches [B, H, Tmax, Dh] valid up to lengths [B]."""
    return decode_attention_torch(q, k_cache, v_cache, lengths)
