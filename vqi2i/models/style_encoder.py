"""Per-domain style encoder E_s: strided convs, global average pool, linear -> style vector.

No instance normalisation: it would remove exactly the statistics that carry style (MUNIT).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class StyleEncoder(nn.Module):
    def __init__(self, in_channels: int, ch: int, style_dim: int, n_down: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 7, padding=3, padding_mode="reflect"), nn.ReLU(True)]
        c = ch
        for i in range(n_down):
            c_out = c * 2 if i < 2 else c  # widen twice, then keep the width (MUNIT)
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1, padding_mode="reflect"), nn.ReLU(True)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> style [B, style_dim]."""
        return self.head(self.features(x).mean(dim=(2, 3)))
