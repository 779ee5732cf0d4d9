"""Vector quantizer: nearest code in a K x D codebook, straight-through gradients.

The nearest-code search goes through `kernels.codebook_lookup` (fused Triton on CUDA, chunked torch
elsewhere), so the N x K distance matrix is never built. Dead codes can be restarted from recent
encoder outputs, which keeps most of the codebook in use (the paper's model used ~35 of 512 codes).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from vqi2i_kernels import codebook_lookup


class VectorQuantizer(nn.Module):
    def __init__(self, n_embed: int, embed_dim: int, beta: float = 0.25, metric: str = "l2"):
        super().__init__()
        if metric not in ("l2", "cosine"):
            raise ValueError(f"metric must be 'l2' or 'cosine', got {metric!r}")
        self.n_embed, self.embed_dim, self.beta, self.metric = n_embed, embed_dim, beta, metric
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        # how often each code was picked in training since the last dead-code check
        self.register_buffer("usage", torch.zeros(n_embed))

    def codebook(self) -> torch.Tensor:
        w = self.embedding.weight
        return F.normalize(w, dim=1) if self.metric == "cosine" else w

    def forward(self, z: torch.Tensor, count: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [B, D, h, w] -> (z_q with straight-through gradient, VQ loss, indices [B, h, w]).

        The returned z_q is in the quantizer's space (unit vectors for the cosine metric). In training the
        codes picked are counted for dead-code restarts, unless count=False (codes of generated images).
        """
        b, _, h, w = z.shape
        zf = rearrange(z, "b d h w -> (b h w) d").float()
        if self.metric == "cosine":
            zf = F.normalize(zf, dim=1)
        codebook = self.codebook()
        with torch.no_grad():
            idx, _ = codebook_lookup(zf, codebook, metric=self.metric)
        zq = F.embedding(idx, codebook)
        # codebook term pulls codes to encodings; commitment (beta) keeps encodings near their codes
        loss = F.mse_loss(zq, zf.detach()) + self.beta * F.mse_loss(zf, zq.detach())
        zq = zf + (zq - zf).detach()
        if self.training and count:
            with torch.no_grad():
                self.usage += torch.bincount(idx, minlength=self.n_embed).to(self.usage)
        zq = rearrange(zq, "(b h w) d -> b d h w", b=b, h=h, w=w)
        return zq, loss, idx.view(b, h, w)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """The encoder output as the quantizer sees it (normalised for cosine); for content regression."""
        return F.normalize(z, dim=1) if self.metric == "cosine" else z

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, h, w] (int) -> z_q [B, D, h, w]."""
        if tokens.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.n_embed):
            raise ValueError(f"token ids must lie in [0, {self.n_embed}), got {int(tokens.min())}..{int(tokens.max())}")
        return rearrange(F.embedding(tokens.long(), self.codebook()), "b h w d -> b d h w")

    @torch.no_grad()
    def restart_dead_codes(self, recent: torch.Tensor, dead_below: float = 1.0) -> int:
        """Move codes used fewer than `dead_below` times since the last check onto random recent
        encoder outputs (`recent` [N, D], before quantization). Returns how many were moved."""
        dead = (self.usage < dead_below).nonzero().flatten()
        self.usage.zero_()
        if dead.numel() == 0 or recent.numel() == 0:
            return 0
        recent = recent.detach().float()
        pick = torch.randint(0, recent.shape[0], (dead.numel(),), device=recent.device)
        self.embedding.weight.data[dead] = recent[pick].to(self.embedding.weight)
        return int(dead.numel())


def codebook_stats(counts: torch.Tensor) -> dict[str, float]:
    """Codes in use and perplexity (exp of the entropy of code frequencies) from per-code counts."""
    total = counts.sum()
    if total <= 0:
        return {"codes_used": 0, "perplexity": 0.0}
    p = counts.double() / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codes_used": int((counts > 0).sum()), "perplexity": float(entropy.exp())}
