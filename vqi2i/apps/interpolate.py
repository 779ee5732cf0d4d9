"""`vqi2i interpolate`: transitional stylization, one of VQ-I2I's applications (docs/architecture.md: a translation).

One content grid is decoded with a style that changes across the image, from style 1 at the left to
style 2 at the right: in N vertical bands (`--mode steps`) or token column by token column (`--mode smooth`). The
decoder takes a spatial style map, so each token column gets its own AdaIN parameters in a single
forward pass. A strip of the N whole-image interpolations style_t = (1 - t) s1 + t s2 is written too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vqi2i.apps.common import (
    add_fit_args,
    add_model_args,
    add_translation_args,
    check_min_size,
    check_outputs_free,
    encode_reference,
    fit_to_factor,
    make_generator,
    open_model,
    parse_direction,
    unfit,
)
from vqi2i.errors import UserError
from vqi2i.images import load_image, save_grid, save_image


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpolate",
        help="transitional stylization: a style that changes from left to right",
        description="Decode one image's content with a style that moves from style 1 (left) to style 2 "
        "(right), in N bands or smoothly, and write the N whole-image interpolations as a strip.",
    )
    add_model_args(p)
    add_translation_args(p, "the content image")
    p.add_argument("--styles", default="random", help="'random' (two N(0,I) styles) or REF1,REF2 (two images)")
    p.add_argument("--steps", "-n", type=int, default=5, help="number of bands and of strip images (>= 2)")
    p.add_argument("--mode", default="steps", choices=("steps", "smooth"), help="N bands or a smooth transition")
    add_fit_args(p)
    p.set_defaults(func=run)


def column_weights(width: int, steps: int, mode: str) -> torch.Tensor:
    """t in [0, 1] for each of `width` columns: N constant bands ('steps') or a linear ramp ('smooth')."""
    if width < 1 or steps < 2:
        raise ValueError("need width >= 1 and steps >= 2")
    cols = torch.arange(width, dtype=torch.float32)
    if mode == "smooth":
        return cols / max(width - 1, 1)
    if mode == "steps":
        band = torch.div(cols * steps, width, rounding_mode="floor")  # band of each column, 0..steps-1
        return band / (steps - 1)
    raise ValueError(f"mode must be 'steps' or 'smooth', got {mode!r}")


def style_map(s1: torch.Tensor, s2: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Styles s1, s2 [S] and column weights [W] -> a style map [1, S, 1, W] with (1 - t) s1 + t s2 per column."""
    t = weights.to(s1)[None, :]
    return ((1 - t) * s1[:, None] + t * s2[:, None])[None, :, None, :]


@torch.no_grad()
def transition(model, x: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor, dst: str, steps: int, mode: str):
    """x [1, C, H, W] (H, W multiples of f) -> (transition image [1, C, H, W], strip [steps, C, H, W])."""
    _, z_q = model.encode_content(x)
    weights = column_weights(z_q.shape[-1], steps, mode)
    image = model.decode(z_q, style_map(s1, s2, weights), dst)
    t = torch.linspace(0, 1, steps, device=s1.device)[:, None]
    strip = model.decode(z_q.expand(steps, -1, -1, -1), (1 - t) * s1 + t * s2, dst)
    return image, strip


def read_styles(spec: str, model, cfg, dst: str, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two styles [S] of --styles: 'random' (two N(0, I) styles from `seed`) or REF1,REF2 (exemplars of `dst`)."""
    if spec == "random":
        s = model.sample_style(2, make_generator(seed), "cpu").to(device)
        return s[0], s[1]
    refs = [Path(r) for r in spec.split(",")]
    if len(refs) != 2 or not all(str(r) for r in refs):
        raise UserError(f"--styles must be 'random' or two reference images REF1,REF2; got '{spec}'")
    styles = []
    for ref in refs:
        if not ref.is_file():
            raise UserError(f"style reference {ref} is not a file")
        styles.append(encode_reference(model, cfg, ref, dst, device)[0])
    return styles[0], styles[1]


def run(args: argparse.Namespace) -> int:
    src, dst = parse_direction(args.direction)
    if args.steps < 2:
        raise UserError(f"--steps must be >= 2, got {args.steps}")
    if not args.input.is_file():
        raise UserError(f"input {args.input} is not an image file")
    tag = f"{src}2{dst}"
    out_image = args.out / f"{args.input.stem}_{tag}_{args.mode}.png"
    out_strip = args.out / f"{args.input.stem}_{tag}_{args.mode}_strip.png"
    check_outputs_free([out_image, out_strip], args.overwrite)

    model, cfg, device = open_model(args)
    if not model.multimodal:
        raise UserError("this checkpoint is the unimodal variant: one fixed style per domain, nothing to interpolate")
    image = load_image(args.input, model.in_channels)
    x, size = fit_to_factor(image[None], model.factor, args.fit)
    check_min_size(x, 2 * model.factor, f"input {args.input}")
    s1, s2 = read_styles(args.styles, model, cfg, dst, device, args.seed)
    if args.mode == "steps" and args.steps > x.shape[-1] // model.factor:
        print(f"note: {args.steps} bands on a {x.shape[-1] // model.factor}-token-wide grid; some bands are empty")
    y, strip = transition(model, x.to(device), s1, s2, dst, args.steps, args.mode)
    if args.fit == "pad":
        y, strip = unfit(y, size), unfit(strip, size)
    save_image(y[0].cpu(), out_image, overwrite=args.overwrite)
    rows = [[image, *strip.cpu()], [image, y[0].cpu()]]
    labels = [f"input | t = 0 .. 1\nin {args.steps} steps", f"input | {args.mode}\ntransition"]
    save_grid(rows, out_strip, overwrite=args.overwrite, labels=labels)
    print(f"wrote {out_image} ({args.mode}, {args.steps} steps) and {out_strip} ({tag})")
    return 0
