"""Build models from a config."""

from __future__ import annotations

import torch.nn as nn
from omegaconf import DictConfig

from vqi2i.models.discriminator import ContentDiscriminator, MultiScaleDiscriminator
from vqi2i.models.vqi2i import DOMAINS, VQI2I


def build_model(cfg: DictConfig) -> VQI2I:
    return VQI2I(cfg.model)


def build_discriminators(cfg: DictConfig) -> nn.ModuleDict:
    """One multi-scale PatchGAN per domain ("a", "b"), and the content-domain discriminator ("content")
    when the content adversarial loss is on."""
    discs = {d: MultiScaleDiscriminator(cfg.model.in_channels, cfg.disc.ndf, cfg.disc.n_layers, cfg.disc.num_scales,
                                        cfg.disc.norm)
             for d in DOMAINS}  # fmt: skip
    if cfg.loss.content_adv > 0:
        discs["content"] = ContentDiscriminator(cfg.model.embed_dim, cfg.disc.content_ch)
    return nn.ModuleDict(discs)
