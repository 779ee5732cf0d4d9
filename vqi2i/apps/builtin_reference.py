"""The recorded result of a built-in model: what `scripts/train_builtin.py` writes beside the weights and
what the tests recompute, so a shipped model that stops giving it (a changed architecture, a loader bug,
a corrupt file) is caught. It runs the models as the commands do (`vqi2i translate`'s `translate_images`).

- a translator: each example image translated to the other domain with one random style (seed 0);
- a prior: its mean bits per token on the content tokens of its codec's example images.
"""

from __future__ import annotations

import math

import torch

from vqi2i.apps.translate import translate_images
from vqi2i.builtin import BuiltinModel
from vqi2i.images import load_image

SEED = 0
OTHER = {"a": "b", "b": "a"}


@torch.no_grad()
def translate_examples(model, card_model: BuiltinModel, channels: int) -> dict[str, torch.Tensor]:
    """{"a/NAME.png" -> its translation to b, "b/NAME.png" -> its translation to a}, images in [-1, 1]."""
    out: dict[str, torch.Tensor] = {}
    for src in ("a", "b"):
        files = card_model.examples(src)
        images = [load_image(f, channels) for f in files]
        gen = torch.Generator().manual_seed(SEED)
        ys = translate_images(model, images, src, OTHER[src], style=None, num_samples=1, generator=gen,
                              batch_size=16, fit="pad", device=torch.device("cpu"))
        for f, y in zip(files, ys):
            out[f"{src}/{f.name}"] = y[0].clamp(-1, 1)
    return out


@torch.no_grad()
def prior_bits_per_token(prior, codec, codec_model: BuiltinModel, channels: int) -> float:
    """Mean bits per token of the prior on the codec's example images (both domains): their token grids,
    cut into the prior's window from the top-left corner."""
    files = codec_model.examples("a") + codec_model.examples("b")
    x = torch.stack([load_image(f, channels) for f in files])
    idx, _ = codec.encode_content(x)
    rows, cols = prior.cfg.block_rows, prior.cfg.block_cols
    window = idx[:, :rows, :cols]
    return float(prior.loss(window)) / math.log(2)

