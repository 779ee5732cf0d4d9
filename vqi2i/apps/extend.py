"""`vqi2i extend`: continue an image beyond its borders (outpainting) with the content prior.

Right: the image's tokens are kept and new columns sampled after them, with a sliding window once the
grid is wider than the prior's context. Left: the mirror image is extended to the right and mirrored
back (the prior was trained on mirrored images too); its new columns are re-encoded in the image's own
orientation and put in front of the original tokens, so the original tokens are never changed. Both:
left, then right. The result is decoded in the input's domain with its own style, or in either domain
with a random or reference style.
"""

from __future__ import annotations

import argparse
import time

import torch

from vqi2i.apps.common import (
    add_input_args,
    add_prior_args,
    input_domains,
    load_inputs,
    open_prior,
    prepare_style,
    render_samples,
    report,
    sample_paths,
    sampler_kwargs,
)
from vqi2i.errors import UserError
from vqi2i.images import save_grid
from vqi2i.sampling import extend_right

SIDES = ("right", "left", "both")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extend",
        help="continue images to the right, left or both (outpainting)",
        description="Extend images beyond their borders with the content prior, optionally rendering the "
        "result in the other domain, e.g. `vqi2i extend -p runs/prior -i photo.png --from a --side both "
        "--pixels 32 -o out/`.",
    )
    add_prior_args(p)
    add_input_args(p)
    p.add_argument("--side", default="right", choices=SIDES, help="where to add pixels")
    p.add_argument("--pixels", type=int, required=True,
                   help="pixels added on each chosen side: a multiple of the codec's downsampling factor")
    p.set_defaults(func=run)


@torch.no_grad()
def extend_tokens(codec, prior, x: torch.Tensor, src: str, side: str, new_cols: int, n: int,
                  **kwargs) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Extend image x [1, C, H, W] of domain `src` by `new_cols` token columns on `side`, n times.

    Returns (token grids [n, h, w + added], the original tokens [h, w], the column where the original
    starts in the grids, seconds spent sampling)."""
    if side not in SIDES:
        raise UserError(f"--side must be one of {', '.join(SIDES)}, got '{side}'")
    device = next(prior.parameters()).device
    x = x.to(device)
    tokens, _ = codec.encode_content(x)
    grid, offset, seconds = tokens.expand(n, -1, -1), 0, 0.0
    if side in ("left", "both"):
        mirrored, _ = codec.encode_content(x.flip(-1))
        t0 = time.perf_counter()
        wide = extend_right(prior, mirrored.expand(n, -1, -1), new_cols, **kwargs)
        seconds += time.perf_counter() - t0
        own = codec.encode_style(x, src) if codec.multimodal else None
        image = codec.decode(wide, own, src).flip(-1)  # the left extension, in the image's orientation
        left, _ = codec.encode_content(image)
        grid = torch.cat([left[:, :, :new_cols], grid], dim=2)
        offset = new_cols
    if side in ("right", "both"):
        t0 = time.perf_counter()
        grid = extend_right(prior, grid, new_cols, **kwargs)
        seconds += time.perf_counter() - t0
    return grid, tokens[0], offset, seconds


def run(args: argparse.Namespace) -> int:
    src, dst, style = input_domains(args)
    if args.pixels < 1:
        raise UserError(f"--pixels must be >= 1, got {args.pixels}")
    prior, codec, codec_cfg, device = open_prior(args)
    style = prepare_style(codec, codec_cfg, style, dst, device, own_domain=src)
    if args.pixels % codec.factor:
        raise UserError(f"--pixels {args.pixels} is not a multiple of the codec's downsampling factor "
                        f"{codec.factor} (try {max(codec.factor, args.pixels // codec.factor * codec.factor)})")
    new_cols = args.pixels // codec.factor
    inputs = load_inputs(args.input, codec, codec_cfg, args.size)
    n = args.num_samples
    names = sample_paths(args, inputs, f"extend_{args.side}")
    kwargs = sampler_kwargs(args, device)

    sheet, sampled, seconds = [], 0, 0.0
    with torch.no_grad():
        for path, x in inputs:
            grid, _, _, secs = extend_tokens(codec, prior, x, src, args.side, new_cols, n, **kwargs)
            seconds += secs
            sampled += n * grid.shape[1] * new_cols * (2 if args.side == "both" else 1)
            images = render_samples(codec, grid, style, x, src, dst, kwargs["generator"], device, names[path],
                                    args.overwrite)
            sheet.append([x[0].cpu(), *images])
    save_grid(sheet, args.out / "grid.png", overwrite=args.overwrite)
    report(f"extended {len(inputs)} image(s) {args.side} by {args.pixels} px ({src}->{dst})", sampled, seconds,
           args.out)
    return 0
