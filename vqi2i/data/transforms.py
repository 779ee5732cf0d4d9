"""Resize, crop and flip for [C,H,W] image tensors, with every random choice drawn from a given
torch.Generator (never the global RNG), so a data set item is a pure function of its seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vqi2i.errors import UserError


def item_generator(*keys: int) -> torch.Generator:
    """A torch.Generator seeded from a tuple of non-negative ints, e.g. (seed, epoch, index, stream).

    SeedSequence mixes the keys, so nearby tuples give unrelated streams and the result does not
    depend on Python's hash randomisation or on the platform."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def parse_size(value: Any, name: str) -> int | None:
    """A config size: a positive int, or None / 'none' for 'keep the native size' (no resize / no crop)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and value.strip().isdigit():
        size = int(value)
    else:
        size = 0
    if size < 1:
        raise UserError(f"data.{name} must be a positive integer or 'none', got {value!r}")
    return size


def resize_shorter(img: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize [C,H,W] so its shorter side is `size`, keeping the aspect ratio (None: unchanged).

    Bicubic with antialiasing, so shrinking does not alias and enlarging stays smooth; the result
    is clamped back into [-1, 1] because bicubic overshoots at edges."""
    if size is None:
        return img
    h, w = img.shape[-2:]
    if min(h, w) == size:
        return img
    if h <= w:
        new_h, new_w = size, max(1, round(w * size / h))
    else:
        new_h, new_w = max(1, round(h * size / w)), size
    out = F.interpolate(img[None], size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    return out[0].clamp_(-1.0, 1.0)


def crop_box(h: int, w: int, crop: int, generator: torch.Generator | None) -> tuple[int, int]:
    """Top-left corner of a crop x crop window: uniform when a generator is given, else centred."""
    if generator is None:
        return (h - crop) // 2, (w - crop) // 2
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    return top, left


@dataclass
class PairTransform:
    """Resize shorter side -> crop (random when training, centred otherwise) -> random horizontal flip.

    Applied to one image or to several images with the SAME crop and flip (paired data)."""

    size: int | None
    crop: int | None
    flip: bool
    train: bool

    def __call__(
        self, images: list[torch.Tensor], paths: list[str | Path], generator: torch.Generator
    ) -> list[torch.Tensor]:
        images = [resize_shorter(img, self.size) for img in images]
        h, w = images[0].shape[-2:]
        for img, path in zip(images[1:], paths[1:]):
            if img.shape[-2:] != (h, w):
                raise UserError(
                    f"paired images differ in size: {paths[0]} is {w}x{h} but {path} is "
                    f"{img.shape[-1]}x{img.shape[-2]} (after resizing)"
                )
        if self.crop is not None:
            if h < self.crop or w < self.crop:
                raise UserError(
                    f"image {paths[0]} is {w}x{h}, smaller than the crop {self.crop}x{self.crop} "
                    "(set data.size to resize it, or lower data.crop)"
                )
            top, left = crop_box(h, w, self.crop, generator if self.train else None)
            images = [img[:, top : top + self.crop, left : left + self.crop] for img in images]
        if self.train and self.flip and bool(torch.rand((), generator=generator) < 0.5):
            images = [img.flip(-1) for img in images]
        return [img.contiguous() for img in images]


def jitter_look(x: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random global change of look for each image of a batch [B, C, H, W] in [-1, 1] (the scene stays):
    brightness, contrast, gamma and a colour cast, and for RGB also a hue rotation about the grey axis and a
    saturation change. `strength` scales every range (1: brightness and contrast x/÷ 1.35, gamma x/÷ 1.4,
    casts up to 0.08, hue up to 0.15 of a turn, saturation x/÷ 1.65). The look-transfer loss of the trainer
    renders an image's tokens with the style of its jittered copy: only the style can carry the change."""
    if x.dim() != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
    b, c = x.shape[:2]

    def uniform(*shape: int, span: float) -> torch.Tensor:
        u = torch.rand(*shape, generator=generator, device=generator.device if generator else "cpu")
        return ((2 * u - 1) * span * strength).to(x.device, x.dtype)

    u = (x + 1) / 2
    if c == 3:
        theta = 2 * np.pi * uniform(b, span=0.15)
        k = torch.full((3,), 1 / np.sqrt(3.0), dtype=x.dtype, device=x.device)
        cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=x.dtype,
                             device=x.device) / np.sqrt(3.0)
        cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
        rot = cos * torch.eye(3, dtype=x.dtype, device=x.device) + sin * cross + (1 - cos) * torch.outer(k, k)
        u = torch.einsum("bij,bjhw->bihw", rot, u)
        grey = u.mean(1, keepdim=True)
        u = grey + (u - grey) * uniform(b, 1, 1, 1, span=0.5).exp()
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    u = mean + (u - mean) * uniform(b, 1, 1, 1, span=0.3).exp()  # contrast
    u = u * uniform(b, 1, 1, 1, span=0.3).exp() + uniform(b, c, 1, 1, span=0.08)  # brightness, cast
    u = u.clamp(0, 1) ** uniform(b, 1, 1, 1, span=0.34).exp()  # gamma
    return (u * 2 - 1).clamp(-1, 1)
