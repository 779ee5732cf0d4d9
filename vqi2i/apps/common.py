"""What the application commands share: model loading, input collection, sizing, seeding."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from vqi2i.errors import UserError

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, type=Path, help="training run folder or checkpoint folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--seed", type=int, default=0, help="seed for random styles and sampling")


def open_model(args: argparse.Namespace):
    """(model, cfg, device) for the command's --checkpoint and --device."""
    from vqi2i.checkpoint import load_model
    from vqi2i.train.runtime import select_device

    device = select_device(args.device)
    model, cfg = load_model(args.checkpoint, device)
    return model, cfg, device


def parse_direction(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, got '{direction}'")
    return DIRECTIONS[direction]


def collect_inputs(path: Path) -> list[Path]:
    """A single image file, or every image in a folder (sorted)."""
    from vqi2i.images import list_images

    if path.is_dir():
        return list_images(path)
    if not path.exists():
        raise UserError(f"input {path} does not exist")
    return [path]


def fit_to_factor(x: torch.Tensor, factor: int, mode: str = "pad") -> tuple[torch.Tensor, tuple[int, int]]:
    """Make H and W multiples of the model's factor. 'pad' reflect-pads at the bottom/right (undone
    by `unfit`), 'crop' centre-crops, 'resize' resizes to the nearest multiple. Returns (x, (H, W))
    with the size to restore for 'pad'."""
    h, w = x.shape[-2:]
    if h % factor == 0 and w % factor == 0:
        return x, (h, w)
    if mode == "pad":
        ph, pw = (-h) % factor, (-w) % factor
        pad_mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=pad_mode), (h, w)
    if mode == "crop":
        nh, nw = h // factor * factor, w // factor * factor
        if nh == 0 or nw == 0:
            raise UserError(f"image {h}x{w} is smaller than the model's factor {factor}")
        top, left = (h - nh) // 2, (w - nw) // 2
        return x[..., top : top + nh, left : left + nw], (nh, nw)
    if mode == "resize":
        nh, nw = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
        return F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False).clamp(-1, 1), (nh, nw)
    raise UserError(f"unknown fit mode '{mode}' (pad, crop or resize)")


def check_min_size(x: torch.Tensor, least: int, what: str) -> None:
    """The decoder's and style encoder's reflect padding need a minimum size: a UserError, not a crash."""
    h, w = x.shape[-2:]
    if h < least or w < least:
        raise UserError(f"{what} is too small ({h}x{w} px once fitted to the factor); this model needs {least}x{least}")


def unfit(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return y[..., : size[0], : size[1]]


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse before any work if an output exists and --overwrite was not given."""
    if overwrite:
        return
    taken = [p for p in paths if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise UserError(f"output {taken[0]} already exists{more}; pass --overwrite to replace")
