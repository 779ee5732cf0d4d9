"""The VQ-I2I translator: shared content encoder + quantizer, per-domain style encoders and decoders.

Translation a -> b: tokens = Q(E_c(x_a)); output = G_b(tokens, style), with the style encoded from a
reference image of b (exemplar-guided) or drawn from N(0, I) (multimodal). The unimodal variant
(uni-VQ-I2I) has no style encoders: each decoder learns one fixed style vector of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from omegaconf import DictConfig

from vqi2i.models.adain_decoder import AdaINDecoder
from vqi2i.models.content_encoder import ContentEncoder
from vqi2i.models.quantizer import VectorQuantizer
from vqi2i.models.style_encoder import StyleEncoder

DOMAINS = ("a", "b")


@dataclass
class Quantized:
    """Images through the content encoder and the quantizer (`VQI2I.quantize`)."""

    z_q: torch.Tensor  # the codes [B, D, h, w], straight-through gradient to z
    vq_loss: torch.Tensor  # codebook + commitment (VQ-VAE)
    tokens: torch.Tensor  # the code ids [B, h, w]
    z: torch.Tensor  # the continuous content features [B, D, h, w] the codes were picked for


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'a' or 'b', got {domain!r}")
    return domain


class VQI2I(nn.Module):
    def __init__(self, m: DictConfig):
        super().__init__()
        self.variant = m.variant
        self.in_channels = int(m.in_channels)
        self.style_dim = int(m.style_dim)
        self.factor = 2 ** (len(m.ch_mult) - 1)
        self.content_encoder = ContentEncoder(
            m.in_channels, m.ch, list(m.ch_mult), m.num_res_blocks, m.z_channels, m.resolution, list(m.attn_resolutions)
        )
        self.quant_conv = nn.Conv2d(m.z_channels, m.embed_dim, 1)
        self.quantizer = VectorQuantizer(m.n_embed, m.embed_dim, m.beta, m.codebook.metric)
        n_up = len(m.ch_mult) - 1
        self.decoders = nn.ModuleDict(
            {d: AdaINDecoder(m.embed_dim, m.in_channels, m.dec_ch, n_up, m.dec_res_blocks, m.style_dim, m.mlp_dim,
                             m.up_kernel, m.dec_up_ch)
             for d in DOMAINS}
        )  # fmt: skip
        if self.variant == "multimodal":
            self.style_encoders = nn.ModuleDict(
                {d: StyleEncoder(m.in_channels, m.style_ch, m.style_dim, m.style_downs, bool(m.style_vae),
                                 bool(m.style_norm), act=m.style_act)
                 for d in DOMAINS}
            )  # fmt: skip
        else:
            self.domain_styles = nn.ParameterDict({d: nn.Parameter(torch.zeros(m.style_dim)) for d in DOMAINS})

    @property
    def n_embed(self) -> int:
        return self.quantizer.n_embed

    @property
    def multimodal(self) -> bool:
        return self.variant == "multimodal"

    def _check_image(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}")
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ValueError(f"image size {x.shape[2]}x{x.shape[3]} is not divisible by the factor {self.factor}")

    # -- content ---------------------------------------------------------------------------------
    def content_features(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous content features in the quantizer's space, before the nearest-code search."""
        self._check_image(x)
        return self.quantizer.project(self.quant_conv(self.content_encoder(x)))

    def quantize(self, x: torch.Tensor) -> Quantized:
        """x -> its codes, VQ loss, tokens and continuous features. For training."""
        z = self.content_features(x)
        z_q, vq_loss, tokens = self.quantizer(z)
        return Quantized(z_q, vq_loss, tokens, z)

    def encode_content(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, H, W] in [-1, 1] -> (tokens [B, H/f, W/f] int64, z_q [B, D, H/f, W/f])."""
        q = self.quantize(x)
        return q.tokens, q.z_q

    # -- style -----------------------------------------------------------------------------------
    def encode_style(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """x [B, C, H, W] of `domain` -> its style [B, style_dim] (the fixed domain style if unimodal)."""
        check_domain(domain)
        self._check_image(x)
        if not self.multimodal:
            return self.domain_styles[domain].expand(x.shape[0], -1)
        return self.style_encoders[domain](x)

    def encode_style_posterior(
        self, x: torch.Tensor, domain: str, track: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x of `domain` -> (style mean, log-variance or None), for training (multimodal only). track: x are
        real images of the domain, whose styles move a standardized encoder's running statistics."""
        check_domain(domain)
        self._check_image(x)
        return self.style_encoders[domain].posterior(x, track)

    def sample_style(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """n styles from the prior N(0, I) (multimodal); generator makes them repeatable."""
        device = device or next(self.parameters()).device
        if generator is not None and generator.device.type != torch.device(device).type:
            return torch.randn(n, self.style_dim, generator=generator).to(device)
        return torch.randn(n, self.style_dim, generator=generator, device=device)

    def _style_for(self, style: torch.Tensor | None, domain: str, n: int, device: torch.device) -> torch.Tensor:
        if not self.multimodal:
            return self.domain_styles[domain].expand(n, -1)
        if style is None:
            raise ValueError("the multimodal model needs a style (encode_style or sample_style)")
        if style.shape[0] != n:
            if style.shape[0] != 1:
                raise ValueError(f"style batch {style.shape[0]} does not match content batch {n}")
            style = style.expand(n, *style.shape[1:])
        return style.to(device)

    # -- decoding and translation ----------------------------------------------------------------
    def decode(self, content: torch.Tensor, style: torch.Tensor | None, domain: str) -> torch.Tensor:
        """content: z_q [B, D, h, w] or tokens [B, h, w]; style [B, S], a style map [B, S, h', w'],
        or None (unimodal). Returns images [B, C, h*f, w*f] in [-1, 1] rendered in `domain`."""
        check_domain(domain)
        z_q = self.quantizer.embed(content) if content.dim() == 3 else content
        style = self._style_for(style, domain, z_q.shape[0], z_q.device)
        return self.decoders[domain](z_q, style)

    def translate(
        self,
        x: torch.Tensor,
        src: str,
        dst: str,
        style: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Translate images of `src` into `dst` (src == dst is intra-domain translation).
        style None: random styles from N(0, I); else a [B, S] / [1, S] style or a style map."""
        check_domain(src)
        _, z_q = self.encode_content(x)
        if style is None and self.multimodal:
            style = self.sample_style(x.shape[0], generator, x.device)
        return self.decode(z_q, style, dst)

    def generator_parameters(self):
        return self.parameters()
