"""Discriminators: a multi-scale PatchGAN for images and a small domain classifier for content features.

`PatchDiscriminator` is pix2pix's PatchGAN (4x4 convs, stride 2, LeakyReLU 0.2) with a choice of
normalisation: `spectral` (spectral norm on every conv, no feature normalisation: a Lipschitz-bounded
critic whose gradients stay smooth; the class's default and the benchmark recipe's) or `batch`
(taming's NLayerDiscriminator as the released code has it; `config.DEFAULTS`' `disc.norm`, so configs
without the recipe train as before). It returns its intermediate activations too, for the feature-matching loss.

`ContentDiscriminator` tells which domain a map of continuous content features came from; the
content encoder is trained to fool it, which pushes both domains onto the same content tokens.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("spectral", "batch")


def _conv(c_in: int, c_out: int, stride: int, norm: str, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=bias)
    return spectral_norm(conv) if norm == "spectral" else conv


class PatchDiscriminator(nn.Module):
    """x [B, C, H, W] -> (patch logits [B, 1, h, w], [activations of every hidden layer])."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "spectral"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"disc.norm must be one of {NORMS}, got {norm!r}")
        layers: list[nn.Module] = [nn.Sequential(_conv(in_channels, ndf, 2, norm), nn.LeakyReLU(0.2, True))]
        c = ndf
        for i in range(1, n_layers + 1):
            c_out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            block: list[nn.Module] = [_conv(c, c_out, stride, norm, bias=norm != "batch")]
            if norm == "batch":
                block.append(nn.BatchNorm2d(c_out))
            layers.append(nn.Sequential(*block, nn.LeakyReLU(0.2, True)))
            c = c_out
        self.layers = nn.ModuleList(layers)
        self.head = _conv(c, 1, 1, norm)
        if norm == "batch":  # taming's weights_init: N(0, 0.02) convs, N(1, 0.02) batch-norm scales
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.normal_(m.weight, 1.0, 0.02)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.head(x), feats


class MultiScaleDiscriminator(nn.Module):
    """PatchGANs on the image and its 2x, 4x, ... downsampled copies."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_scales: int = 2,
                 norm: str = "spectral"):
        super().__init__()
        self.nets = nn.ModuleList([PatchDiscriminator(in_channels, ndf, n_layers, norm) for _ in range(num_scales)])

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(patch logits at every scale, coarsest last; every scale's hidden activations, in order)."""
        logits, feats = [], []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out, f = net(x)
            logits.append(out)
            feats += f
        return logits, feats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_features(x)[0]


class ContentDiscriminator(nn.Module):
    """Content features [B, D, h, w] -> per-position logits [B, 1, h, w] that the features came from domain A.

    1x1 then 3x3 convs: it judges a token and its neighbours, not the whole layout, so it cannot win by
    recognising which character (or scene) is shown, only by how it is encoded."""

    def __init__(self, embed_dim: int, ch: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(embed_dim, ch, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ch, ch, 3, padding=1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(ch, 1, 1)),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
