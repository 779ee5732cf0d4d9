"""Per-domain style encoder E_s: strided convs, global average pool, linear -> style vector.

No instance normalisation: it would remove exactly the statistics that carry style (MUNIT).

variational=True (model.style_vae) adds a log-variance head (DRIT++'s attribute encoder): in training a
style is drawn from N(mu, sigma^2) and a KL term to N(0, I) charges for every bit the style carries, so
what the content tokens can hold (an emoji's colours) stays in the tokens, and a random N(0, I) style
is a style the decoder has seen. At inference the style is the mean.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class StyleEncoder(nn.Module):
    def __init__(self, in_channels: int, ch: int, style_dim: int, n_down: int = 4, variational: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 7, padding=3, padding_mode="reflect"), nn.ReLU(True)]
        c = ch
        for i in range(n_down):
            c_out = c * 2 if i < 2 else c  # widen twice, then keep the width (MUNIT)
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1, padding_mode="reflect"), nn.ReLU(True)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, style_dim)
        self.logvar = nn.Linear(c, style_dim) if variational else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> style [B, style_dim] (the mean, for a variational encoder)."""
        return self.head(self.features(x).mean(dim=(2, 3)))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (mean, log-variance), each [B, style_dim]. A plain encoder has no variance: log-variance None."""
        h = self.features(x).mean(dim=(2, 3))
        return self.head(h), (self.logvar(h) if self.logvar is not None else None)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over the style dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
