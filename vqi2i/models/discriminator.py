"""Multi-scale PatchGAN: taming's NLayerDiscriminator applied to the image and its downsampled copies."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from taming.modules.discriminator.model import NLayerDiscriminator, weights_init


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_scales: int = 2):
        super().__init__()
        self.nets = nn.ModuleList(
            [NLayerDiscriminator(input_nc=in_channels, ndf=ndf, n_layers=n_layers) for _ in range(num_scales)]
        )
        self.apply(weights_init)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch logits at every scale, coarsest last."""
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(net(x))
        return outs
