"""`vqi2i complete`: keep part of an image and let the content prior invent the rest.

The known part is the top-left quarter, the left half or the top half (`--keep`), or everything outside
a rectangle (`--mask X0,Y0,X1,Y1` in pixels: the token cells it touches are re-sampled). Known tokens
are kept exactly; unknown ones are sampled conditioned on every token before them in raster order.
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
from vqi2i.sampling import complete_grid, known_region


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "complete",
        help="complete partial images: keep a quarter or half (or all but a rectangle), sample the rest",
        description="Complete images with the content prior: known tokens are kept, the others sampled; "
        "optionally rendered in the other domain. E.g. `vqi2i complete -p runs/prior -i img.png --from a "
        "--keep left -o out/`.",
    )
    add_prior_args(p)
    add_input_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--keep", choices=("quarter", "left", "top"),
                      help="the known part: top-left quarter, left half or top half")
    what.add_argument("--mask", metavar="X0,Y0,X1,Y1", help="a pixel rectangle to re-sample; the rest is kept")
    p.set_defaults(func=run)


def rectangle_unknown(text: str, height: int, width: int, factor: int) -> torch.Tensor:
    """The known-cell mask [h, w] for a pixel rectangle to re-sample (cells it touches are unknown)."""
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--mask must be X0,Y0,X1,Y1 in pixels, got '{text}'") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise UserError(f"--mask {text} must satisfy 0 <= X0 < X1 <= {width} and 0 <= Y0 < Y1 <= {height} "
                        "(the input's size after resizing)")
    known = torch.ones(height // factor, width // factor, dtype=torch.bool)
    known[y0 // factor : -(-y1 // factor), x0 // factor : -(-x1 // factor)] = False
    return known


@torch.no_grad()
def complete_tokens(codec, prior, x: torch.Tensor, known: torch.Tensor, n: int,
                    **kwargs) -> tuple[torch.Tensor, torch.Tensor, float]:
    """n completions of image x [1, C, H, W] -> (token grids [n, h, w], the image's tokens [h, w], seconds)."""
    device = next(prior.parameters()).device
    tokens, _ = codec.encode_content(x.to(device))
    t0 = time.perf_counter()
    grid = complete_grid(prior, tokens.expand(n, -1, -1), known, allow_window=True, **kwargs)
    return grid, tokens[0], time.perf_counter() - t0


def masked_view(x: torch.Tensor, known: torch.Tensor, factor: int) -> torch.Tensor:
    """The input with its unknown cells greyed out, for the contact sheet."""
    keep = known.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
    return torch.where(keep, x, torch.zeros_like(x))


def run(args: argparse.Namespace) -> int:
    src, dst, style = input_domains(args)
    prior, codec, codec_cfg, device = open_prior(args)
    style = prepare_style(codec, codec_cfg, style, dst, device, own_domain=src)
    inputs = load_inputs(args.input, codec, codec_cfg, args.size)
    n = args.num_samples
    tag = args.keep or "mask"
    names = sample_paths(args, inputs, f"complete_{tag}")
    kwargs = sampler_kwargs(args, device)

    sheet, sampled, seconds = [], 0, 0.0
    with torch.no_grad():
        for path, x in inputs:
            H, W = x.shape[-2:]
            h, w = H // codec.factor, W // codec.factor
            known = known_region(args.keep, h, w) if args.keep else rectangle_unknown(args.mask, H, W, codec.factor)
            grid, _, secs = complete_tokens(codec, prior, x, known, n, **kwargs)
            seconds += secs
            sampled += n * int((~known).sum())
            images = render_samples(codec, grid, style, x, src, dst, kwargs["generator"], device, names[path],
                                    args.overwrite)
            sheet.append([x[0].cpu(), masked_view(x[0].cpu(), known, codec.factor), *images])
    save_grid(sheet, args.out / "grid.png", overwrite=args.overwrite)
    report(f"completed {len(inputs)} image(s) ({tag}, {src}->{dst})", sampled, seconds, args.out)
    return 0
