"""The content encoder E_c, shared by both domains, built from taming-transformers' blocks."""

from __future__ import annotations

import torch
import torch.nn as nn
from taming.modules.diffusionmodules.model import AttnBlock, Downsample, Normalize, ResnetBlock


class ContentEncoder(nn.Module):
    """Image [B, C, H, W] -> features [B, z_channels, H/f, W/f], f = 2 ** (len(ch_mult) - 1)."""

    def __init__(
        self,
        in_channels: int,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        z_channels: int,
        resolution: int,
        attn_resolutions: list[int] = (),
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        blocks: list[nn.Module] = []
        block_in, res = ch, resolution
        for level, mult in enumerate(ch_mult):
            block_out = ch * mult
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(in_channels=block_in, out_channels=block_out, temb_channels=0, dropout=0.0))
                block_in = block_out
                if res in attn_resolutions:
                    blocks.append(AttnBlock(block_in))
            if level != len(ch_mult) - 1:
                blocks.append(Downsample(block_in, with_conv=True))
                res //= 2
        self.down = nn.ModuleList(blocks)
        self.mid = nn.ModuleList(
            [
                ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=0.0),
                AttnBlock(block_in),
                ResnetBlock(in_channels=block_in, out_channels=block_in, temb_channels=0, dropout=0.0),
            ]
        )
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in [*self.down, *self.mid]:
            h = block(h, None) if isinstance(block, ResnetBlock) else block(h)
        h = self.norm_out(h)
        return self.conv_out(h * torch.sigmoid(h))
