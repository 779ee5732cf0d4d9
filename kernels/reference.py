"""Torch paths of the kernels: the numerical reference, and what runs on CPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_BYTES = 16 * 2**20  # the fp32 block of chunk x K distances the torch path builds at a time


@torch.no_grad()
def codebook_lookup_torch(
    z: torch.Tensor, codebook: torch.Tensor, *, metric: str = "l2", chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code for each row of z (N x D) in codebook (K x D) -> (indices [N], distances [N]).

    Chunked over N so that memory stays bounded by one chunk x K block (CHUNK_BYTES by default)
    instead of taming's several N x K matrices. l2 distances are squared euclidean, in taming's
    order of operations (z^2 + e^2) - 2 z.e, one in-place addmm per chunk; cosine distances are
    1 - cos. Ties go to the lowest index (torch.min, like argmin). A search: no gradient.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; use 'l2' or 'cosine'")
    z32 = z.float()
    e32 = codebook.float()
    if metric == "cosine":
        z32 = F.normalize(z32, dim=1)
        e32 = F.normalize(e32, dim=1)
    n, k = z32.shape[0], e32.shape[0]
    if chunk is None:
        chunk = max(1, CHUNK_BYTES // (4 * max(k, 1)))
    e_t = e32.t()
    e_sq = (e32 * e32).sum(1)
    idx = torch.empty(n, dtype=torch.long, device=z.device)
    dist = torch.empty(n, dtype=torch.float32, device=z.device)
    block = torch.empty(min(chunk, n), k, device=z32.device)  # reused: no allocator churn across chunks
    for s in range(0, n, chunk):
        zc = z32[s : s + chunk]
        d = block[: zc.shape[0]]
        if metric == "l2":  # |z|^2 per chunk too: a whole-N temporary would be N x D
            torch.add((zc * zc).sum(1, keepdim=True), e_sq[None, :], out=d)
            d.addmm_(zc, e_t, alpha=-2.0)
        else:
            d.fill_(1.0).addmm_(zc, e_t, alpha=-1.0)
        torch.min(d, dim=1, out=(dist[s : s + chunk], idx[s : s + chunk]))
    return idx, dist


def attention_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True
) -> torch.Tensor:
    """q, k, v: [B, H, T, Dh] -> [B, H, T, Dh]. Causal masks are aligned to the end (Tq <= Tk)."""
    tq, tk = q.shape[-2], k.shape[-2]
    if causal and tq != tk:
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def decode_attention_torch(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """One query per sequence against its cache: q [B, H, Dh], caches [B, H, Tmax, Dh], lengths [B]."""
    tmax = k_cache.shape[2]
    valid = torch.arange(tmax, device=q.device)[None, :] < lengths.to(q.device)[:, None]  # [B, Tmax]
    out = F.scaled_dot_product_attention(q[:, :, None], k_cache, v_cache, attn_mask=valid[:, None, None, :])
    return out[:, :, 0]
