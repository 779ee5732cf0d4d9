"""`vqi2i translate`: many translations per input, with random styles or the style of a reference.

Inputs of any size: by default they are reflect-padded to a multiple of the model's downsampling
factor and the outputs are cropped back (`--fit crop|resize` for the alternatives).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch

from vqi2i.apps.common import (
    add_fit_args,
    add_model_args,
    add_translation_args,
    check_min_size,
    check_outputs_free,
    collect_inputs,
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
        "translate",
        help="translate images between the domains",
        description="Translate images with a trained checkpoint: N diverse outputs per input (random styles), "
        "or outputs in the style of a reference image.",
    )
    add_model_args(p)
    add_translation_args(p, "an image or a folder of images")
    p.add_argument("--style", default="random", help="'random' (N(0,I)) or the path of a reference image")
    p.add_argument("--num-samples", "-n", type=int, default=1, help="outputs per input (random styles)")
    p.add_argument("--intra", action="store_true", help="intra-domain: re-render inputs in their own domain")
    p.add_argument("--grid", action="store_true", help="also write grid.png (input | outputs)")
    p.add_argument("--batch-size", type=int, default=8, help="inputs per forward pass")
    add_fit_args(p)
    p.set_defaults(func=run)


@torch.no_grad()
def translate_images(
    model, images: list[torch.Tensor], src: str, dst: str, *, style: torch.Tensor | None, num_samples: int,
    generator: torch.Generator, batch_size: int, fit: str, device: torch.device,
) -> list[torch.Tensor]:
    """For each image [C, H, W], its outputs [num_samples, C, H', W'], batching same-sized inputs."""
    fitted = [fit_to_factor(im[None], model.factor, fit) for im in images]
    by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (x, _) in enumerate(fitted):
        by_size[tuple(x.shape[-2:])].append(i)
    # draw every random style up front, in input order, so results do not depend on the batching
    styles = None
    if model.multimodal and style is None:
        styles = model.sample_style(len(images) * num_samples, generator, "cpu").view(len(images), num_samples, -1)
    results: list[torch.Tensor | None] = [None] * len(images)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            x = torch.cat([fitted[i][0] for i in chunk]).to(device)
            _, z_q = model.encode_content(x)  # encode once, decode with every style
            z_q = z_q.repeat_interleave(num_samples, dim=0)
            if styles is not None:
                s = torch.cat([styles[i] for i in chunk]).to(device)
            elif style is not None:
                s = style.to(device).expand(z_q.shape[0], -1)
            else:
                s = None
            y = model.decode(z_q, s, dst).cpu()
            for j, i in enumerate(chunk):
                results[i] = unfit(y[j * num_samples : (j + 1) * num_samples], fitted[i][1])
    return results  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    src, dst = parse_direction(args.direction)
    if args.intra:
        dst = src
    if args.num_samples < 1 or args.batch_size < 1:
        raise UserError("--num-samples and --batch-size must be >= 1")
    inputs = collect_inputs(args.input)
    model, cfg, device = open_model(args)
    n = args.num_samples
    if not model.multimodal and (n > 1 or args.style != "random"):
        print("note: the unimodal model has one fixed style per domain; writing one output per input")
        n = 1

    style = None
    if args.style != "random" and model.multimodal:
        ref_path = Path(args.style)
        if not ref_path.is_file():
            raise UserError(f"--style must be 'random' or an image file; {ref_path} is neither")
        style = encode_reference(model, cfg, ref_path, dst, device).cpu()
        if args.num_samples > 1:
            print("note: a reference style gives one output per input; writing one")
            n = 1

    tag = f"{src}2{dst}"
    out_paths = {p: [args.out / f"{p.stem}_{tag}_{k}.png" for k in range(n)] for p in inputs}
    all_out = [q for qs in out_paths.values() for q in qs] + ([args.out / "grid.png"] if args.grid else [])
    check_outputs_free(all_out, args.overwrite)

    images = [load_image(p, model.in_channels) for p in inputs]
    for p, im in zip(inputs, images):
        check_min_size(fit_to_factor(im[None], model.factor, args.fit)[0], 2 * model.factor, f"input {p}")
    t0 = time.perf_counter()
    outputs = translate_images(
        model, images, src, dst, style=style, num_samples=n, generator=make_generator(args.seed),
        batch_size=args.batch_size, fit=args.fit, device=device,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    for p, ys in zip(inputs, outputs):
        for q, y in zip(out_paths[p], ys):
            save_image(y, q, overwrite=args.overwrite)
    if args.grid:
        rows = [[im, *ys] for im, ys in zip(images, outputs)]
        save_grid(rows, args.out / "grid.png", overwrite=args.overwrite)
    total = len(inputs) * n
    print(f"wrote {total} image(s) to {args.out} ({tag}, {total / elapsed:.1f} images/s)")
    return 0
