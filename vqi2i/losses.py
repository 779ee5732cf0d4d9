"""Loss terms: adversarial (LSGAN or hinge, over multi-scale outputs), discriminator feature matching,
the content-domain adversarial pair, a structural (SSIM) reconstruction term, and a VGG16 perceptual loss.

The VGG weights are read from a local file the user names; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from vqi2i.errors import UserError


def d_loss(real: list[torch.Tensor], fake: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Discriminator loss summed over scales."""
    total = real[0].new_zeros(())
    for r, f in zip(real, fake):
        if mode == "lsgan":
            total = total + F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f))
        else:
            total = total + F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
    return total


def g_loss(fake: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Generator's adversarial loss summed over scales."""
    total = fake[0].new_zeros(())
    for f in fake:
        total = total + (F.mse_loss(f, torch.ones_like(f)) if mode == "lsgan" else -f.mean())
    return total


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's feature matching: mean over layers of the L1 distance between the discriminator's
    activations for generated images and for their real counterparts (the real ones as fixed targets).
    A perceptual loss that needs no downloaded network."""
    if len(fake) != len(real) or not fake:
        raise ValueError(f"need the same non-zero number of feature maps, got {len(fake)} and {len(real)}")
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real)) / len(fake)


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM(x, y) for images [B, C, H, W] in [-1, 1], averaged over the batch; differentiable in x and y.

    SSIM compares local means, contrasts and correlations (Gaussian window, 11 px, sigma 1.5, as the
    evaluation's SSIM), so a missing thin stroke costs as much as the local structure it breaks, where
    an L1 on a mostly blank image barely notices it.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"x and y must both be [B,C,H,W] of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    from torchmetrics.functional.image import structural_similarity_index_measure

    kernel = min(11, (min(x.shape[-2:]) - 1) // 2 * 2 + 1)
    ssim = structural_similarity_index_measure((x.float() + 1) / 2, (y.float() + 1) / 2, data_range=1.0,
                                               kernel_size=kernel)
    return 1.0 - ssim


def content_d_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """The content discriminator learns to tell domain A's content features (1) from B's (0) (LSGAN)."""
    return F.mse_loss(logits_a, torch.ones_like(logits_a)) + F.mse_loss(logits_b, torch.zeros_like(logits_b))


def content_g_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """The content encoder makes both domains' features undecidable (target 0.5 for both, as DRIT does),
    rather than swapping the labels, so neither domain is pushed onto the other's codes."""
    return F.mse_loss(logits_a, torch.full_like(logits_a, 0.5)) + F.mse_loss(logits_b, torch.full_like(logits_b, 0.5))


class VGGPerceptual(nn.Module):
    """L1 distance of VGG16 features (relu1_2, relu2_2, relu3_3, relu4_3) of two images in [-1, 1]."""

    LAYERS = (3, 8, 15, 22)

    def __init__(self, weights_path: str | Path | None):
        super().__init__()
        if not weights_path:
            raise UserError(
                "loss.perceptual > 0 needs loss.vgg_weights=PATH to a local torchvision VGG16 state dict "
                "(vgg16-397923af.pth or a .safetensors); vqi2i never downloads weights"
            )
        path = Path(weights_path)
        if not path.is_file():
            raise UserError(f"VGG16 weights file {path} does not exist (loss.vgg_weights)")
        from torchvision.models import vgg16

        net = vgg16(weights=None)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            # the full torchvision state dict, or just its `features.*` part (all this loss uses)
            sd = {k: v for k, v in sd.items() if k.startswith("features.")}
            missing, _ = net.load_state_dict(sd, strict=False)
        except Exception as e:  # noqa: BLE001 - any failure here is a bad weights file
            raise UserError(f"{path} is not a torchvision VGG16 state dict ({type(e).__name__})") from None
        needed = [k for k in missing if k.startswith("features.") and int(k.split(".")[1]) <= self.LAYERS[-1]]
        if needed:
            raise UserError(f"{path} is not a torchvision VGG16 state dict (missing {needed[0]})")
        self.features = net.features[: self.LAYERS[-1] + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h, g = self._prep(x), self._prep(y)
        loss = x.new_zeros(())
        for i, layer in enumerate(self.features):
            h, g = layer(h), layer(g)
            if i in self.LAYERS:
                loss = loss + F.l1_loss(h, g)
        return loss

    def train(self, mode: bool = True):  # the backbone always stays in eval mode
        super().train(mode)
        self.features.eval()
        return self
