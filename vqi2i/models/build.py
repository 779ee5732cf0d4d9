"""Build models from a config."""

from __future__ import annotations

from omegaconf import DictConfig

from vqi2i.models.discriminator import MultiScaleDiscriminator
from vqi2i.models.vqi2i import DOMAINS, VQI2I


def build_model(cfg: DictConfig) -> VQI2I:
    return VQI2I(cfg.model)


def build_discriminators(cfg: DictConfig):
    import torch.nn as nn

    return nn.ModuleDict(
        {d: MultiScaleDiscriminator(cfg.model.in_channels, cfg.disc.ndf, cfg.disc.n_layers, cfg.disc.num_scales)
         for d in DOMAINS}
    )  # fmt: skip
