"""`vqi2i generate`: new scenes from the content prior, decoded in domain A, B or both.

Token grids of any size up to the prior's context are sampled in one window; larger grids need
`--window` (a sliding window). Each grid is decoded with a random style or the style of a reference
image. The helpers shared with `vqi2i extend` and `vqi2i complete` are in `vqi2i.apps.common`.
"""

from __future__ import annotations

import argparse
import time

import torch

from vqi2i.apps.common import (
    add_prior_args,
    check_outputs_free,
    decode_styles,
    open_prior,
    parse_pair,
    prepare_style,
    report,
    sampler_kwargs,
)
from vqi2i.errors import UserError
from vqi2i.images import save_grid, save_image
from vqi2i.sampling import check_grid_fits, generate_grids

# -- generate -----------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample new scenes from the content prior",
        description="Sample new content-token grids from a trained prior and decode them in domain A, B or "
        "both, with random styles or the style of a reference image.",
    )
    add_prior_args(p)
    p.add_argument("--grid", help="token grid ROWSxCOLS (default: the prior's context)")
    p.add_argument("--window", action="store_true", help="allow grids larger than the context (sliding window)")
    p.add_argument("--domain", default="both", choices=("a", "b", "both"), help="decode in a, b or both")
    p.add_argument("--style", default="random", help="'random' or a reference image of --domain")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    domains = ["a", "b"] if args.domain == "both" else [args.domain]
    if args.style != "random" and len(domains) > 1:
        raise UserError("a reference style belongs to one domain: pass --domain a or --domain b with it")
    n = args.num_samples
    outs = [args.out / f"sample_{k:03d}_{d}.png" for k in range(n) for d in domains] + [args.out / "grid.png"]
    check_outputs_free(outs, args.overwrite)
    prior, codec, codec_cfg, device = open_prior(args)
    style_spec = prepare_style(codec, codec_cfg, args.style, domains[0], device)
    rows, cols = parse_pair(args.grid, "--grid") if args.grid else (prior.cfg.block_rows, prior.cfg.block_cols)
    if min(rows, cols) < 2:
        raise UserError(f"--grid {rows}x{cols} is too small: the decoder needs at least 2x2 tokens")
    check_grid_fits(prior, rows, cols, args.window)
    kwargs = sampler_kwargs(args, device)

    with torch.no_grad():
        t0 = time.perf_counter()
        grids = generate_grids(prior, n, rows, cols, allow_window=args.window, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        sheet = []
        for d in domains:
            style = decode_styles(codec, style_spec, n, kwargs["generator"], device)
            images = codec.decode(grids, style, d).float().cpu()
            for k in range(n):
                save_image(images[k], args.out / f"sample_{k:03d}_{d}.png", overwrite=args.overwrite)
            sheet.append(images)
    save_grid(sheet, args.out / "grid.png", overwrite=args.overwrite, labels=[d.upper() for d in domains])
    report(f"generated {n} grid(s) of {rows}x{cols} tokens", n * rows * cols, seconds, args.out)
    return 0
