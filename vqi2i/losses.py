"""The loss terms of the generator and discriminator steps, one function each (tensors in, a scalar out), with
the method each comes from. The generator step (`vqi2i.train.trainer.generator_step`) computes every term it
uses with these, weighs them (`trainer.loss_weights`) and sums them; the VQ term (codebook + commitment, VQ-VAE:
van den Oord et al. 2017) comes out of the quantizer itself (`VectorQuantizer.forward`).

The VGG weights of the perceptual loss are read from a local file the user names; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from vqi2i.errors import UserError

# -- images against images -----------------------------------------------------------------------------


def reconstruction(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 of reconstructions to their inputs (VQ-I2I, Chen et al. 2022)."""
    return F.l1_loss(rec, x)


def paired(translation: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 of translations to their paired targets, for paired data (pix2pix, Isola et al. 2017)."""
    return F.l1_loss(translation, target)


def cycle(back: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 of images translated there and back to themselves (cycle consistency, CycleGAN: Zhu et al. 2017)."""
    return F.l1_loss(back, x)


def lowpass(translations: torch.Tensor, sources: torch.Tensor, size: int) -> torch.Tensor:
    """L1 between translations [k * B, ...] and their B sources (k translations each, in blocks of B), both
    average-pooled to a size x size grid: a translation keeps its source's coarse layout and colours. In image
    space, so the encoder cannot collude as it can in the content regression."""
    repeats = translations.shape[0] // sources.shape[0]
    return F.l1_loss(F.adaptive_avg_pool2d(translations, size),
                     F.adaptive_avg_pool2d(sources, size).repeat(repeats, 1, 1, 1))


def look_transfer(rendered: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
    """L1 of images' own tokens rendered with the styles of their re-coloured copies to those copies: the change
    of look can only travel through the style, since the tokens never saw it."""
    return F.l1_loss(rendered, copies)


def mode_seeking(one: torch.Tensor, two: torch.Tensor, style_one: torch.Tensor, style_two: torch.Tensor,
                 target: float) -> torch.Tensor:
    """Mode seeking (MSGAN: Mao et al. 2019; DRIT++): two styles of one content must give two images. Each pair's
    pixel L1 per unit of style L1 is pushed up to `target`, as a hinge: bounded, and off once reached, so it
    cannot grow into noise. The styles are fixed."""
    ratio = (one - two).abs().flatten(1).mean(1) / (style_one.detach() - style_two).abs().mean(1).clamp_min(1e-3)
    return F.relu(target - ratio).mean()


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM(x, y) (Wang et al. 2004) for images [B, C, H, W] in [-1, 1], averaged over the batch;
    differentiable in x and y.

    SSIM compares local means, contrasts and correlations (Gaussian window, 11 px, sigma 1.5, as the
    evaluation's SSIM), so a missing thin stroke costs as much as the local structure it breaks, where
    an L1 on a mostly blank image barely notices it.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"x and y must both be [B,C,H,W] of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    # imported here: torchmetrics takes seconds to import, and only this optional term needs it
    from torchmetrics.functional.image import structural_similarity_index_measure

    kernel = min(11, (min(x.shape[-2:]) - 1) // 2 * 2 + 1)
    ssim = structural_similarity_index_measure((x.float() + 1) / 2, (y.float() + 1) / 2, data_range=1.0,
                                               kernel_size=kernel)
    return 1.0 - ssim


# -- latents against latents ---------------------------------------------------------------------------


def content_regression(recovered: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """L1 of a translation's content features, encoded again, to the content it was made from (a fixed target):
    latent content reconstruction (MUNIT: Huang et al. 2018)."""
    return F.l1_loss(recovered, content.detach())


def content_tokens(recovered: torch.Tensor, codebook: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a translation's content features, encoded again, against the tokens it was made from, with
    the negative squared distance to each code as the logit: the nearest code of every position must be the source's
    code, not just a feature near it (an L1 near the code can still land in a neighbouring code's cell). The codebook
    is a fixed target here. recovered [B, D, h, w], codebook [K, D], tokens [B, h, w]."""
    z = recovered.permute(0, 2, 3, 1).reshape(-1, recovered.shape[1]).float()
    e = codebook.detach().float()
    logits = 2 * z @ e.t() - (z * z).sum(1, keepdim=True) - (e * e).sum(1)[None]
    return F.cross_entropy(logits, tokens.reshape(-1).long())


def style_regression(recovered: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """L1 of the style encoded from a translation to the style it was made with (a fixed target): latent style
    reconstruction (MUNIT: Huang et al. 2018)."""
    return F.l1_loss(recovered, style.detach())


def style_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of variational style encoders (DRIT++: Lee et al. 2020), summed over the
    style dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


# -- adversarial ---------------------------------------------------------------------------------------


def d_loss(real: list[torch.Tensor], fake: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Discriminator loss summed over scales: LSGAN (Mao et al. 2017) or hinge (Lim and Ye 2017)."""
    total = real[0].new_zeros(())
    for r, f in zip(real, fake):
        if mode == "lsgan":
            total = total + F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f))
        else:
            total = total + F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()
    return total


def g_loss(fake: list[torch.Tensor], mode: str) -> torch.Tensor:
    """Generator's adversarial loss summed over scales: LSGAN or hinge, as `d_loss`."""
    total = fake[0].new_zeros(())
    for f in fake:
        total = total + (F.mse_loss(f, torch.ones_like(f)) if mode == "lsgan" else -f.mean())
    return total


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching (pix2pixHD: Wang et al. 2018): mean over layers of the L1 distance between the
    discriminator's activations for generated images and for their real counterparts (the real ones as fixed
    targets). A perceptual loss that needs no downloaded network."""
    if len(fake) != len(real) or not fake:
        raise ValueError(f"need the same non-zero number of feature maps, got {len(fake)} and {len(real)}")
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real)) / len(fake)


def content_d_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """The content discriminator learns to tell domain A's content features (1) from B's (0) (LSGAN; DRIT: Lee
    et al. 2018)."""
    return F.mse_loss(logits_a, torch.ones_like(logits_a)) + F.mse_loss(logits_b, torch.zeros_like(logits_b))


def content_g_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """The content encoder makes both domains' features undecidable (target 0.5 for both, as DRIT does),
    rather than swapping the labels, so neither domain is pushed onto the other's codes."""
    return F.mse_loss(logits_a, torch.full_like(logits_a, 0.5)) + F.mse_loss(logits_b, torch.full_like(logits_b, 0.5))


# -- perceptual ----------------------------------------------------------------------------------------


class VGGPerceptual(nn.Module):
    """L1 distance of VGG16 features (relu1_2, relu2_2, relu3_3, relu4_3) of two images in [-1, 1] (perceptual
    loss: Johnson et al. 2016)."""

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
        from torchvision.models import vgg16  # here: torchvision takes seconds to import, only this term needs it

        net = vgg16(weights=None)
        try:
            if path.suffix == ".safetensors":
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
