"""Per-domain generator G: quantized content + style -> image, through AdaIN residual blocks.

The AdaIN scale/shift come from an MLP on the style and are passed explicitly to each layer (no
module state is mutated between calls), so samples with different styles can share a batch. A style
may also be a spatial map [B, S, h, w]: each location gets its own AdaIN parameters, which is how a
style that changes across the frame (transitional stylization) is rendered.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance-normalise x [B, C, H, W], then scale by (1 + gamma) and shift by beta.

    gamma/beta are [B, C, 1, 1] (one style per image) or [B, C, h, w] (a style map, resized to x).
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    x = (x - mean) * torch.rsqrt(var + eps)
    if gamma.shape[-2:] != x.shape[-2:] and gamma.shape[-2:] != (1, 1):
        gamma = F.interpolate(gamma, size=x.shape[-2:], mode="bilinear", align_corners=True)
        beta = F.interpolate(beta, size=x.shape[-2:], mode="bilinear", align_corners=True)
    return x * (1 + gamma) + beta


class AdaINResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.n_params = 4 * ch  # (gamma, beta) for each of the two AdaIN layers

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = params.chunk(4, dim=1)
        h = F.relu(adain(self.conv1(x), g1, b1))
        h = adain(self.conv2(h), g2, b2)
        return x + h


class AdaINDecoder(nn.Module):
    """z_q [B, D, h, w] + style [B, S] (or [B, S, h', w']) -> image [B, C, h*f, w*f] in [-1, 1]."""

    def __init__(
        self,
        embed_dim: int,
        out_channels: int,
        ch: int,
        n_up: int,
        n_res: int,
        style_dim: int,
        mlp_dim: int,
        up_kernel: int = 5,
        up_ch: int = 32,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(embed_dim, ch, 1)
        self.res = nn.ModuleList([AdaINResBlock(ch) for _ in range(n_res)])
        up: list[nn.Module] = []
        c = ch
        for _ in range(n_up):
            c_out = max(c // 2, up_ch)  # halve per stage, never below up_ch
            up += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c, c_out, up_kernel, padding=up_kernel // 2, padding_mode="reflect"),
                nn.GroupNorm(1, c_out),  # layer norm over (C, H, W), as MUNIT's upsampling uses
                nn.ReLU(True),
            ]
            c = c_out
        self.up = nn.Sequential(*up)
        self.conv_out = nn.Conv2d(c, out_channels, 7, padding=3, padding_mode="reflect")
        n_params = sum(b.n_params for b in self.res)
        self.mlp = nn.Sequential(
            nn.Linear(style_dim, mlp_dim), nn.ReLU(True),
            nn.Linear(mlp_dim, mlp_dim), nn.ReLU(True),
            nn.Linear(mlp_dim, n_params),
        )  # fmt: skip

    def adain_params(self, style: torch.Tensor) -> torch.Tensor:
        """style [B, S] -> [B, P, 1, 1]; style map [B, S, h, w] -> [B, P, h, w]."""
        if style.dim() == 2:
            return self.mlp(style)[:, :, None, None]
        if style.dim() == 4:
            return self.mlp(style.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        raise ValueError(f"style must be [B, S] or [B, S, h, w], got shape {tuple(style.shape)}")

    def forward(self, z_q: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        params = self.adain_params(style)
        h = self.conv_in(z_q)
        start = 0
        for block in self.res:
            h = block(h, params[:, start : start + block.n_params])
            start += block.n_params
        return torch.tanh(self.conv_out(self.up(h)))
