"""`vqi2i generate`: new scenes from the content prior, decoded in domain A, B or both.

Token grids of any size up to the prior's context are sampled in one window; larger grids need
`--window` (a sliding window). Each grid is decoded with a random style or the style of a reference
image. The helpers at the top are shared with `vqi2i extend` and `vqi2i complete`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vqi2i.errors import UserError

# -- shared by generate, extend and complete ---------------------------------------------------------


def add_prior_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prior", "-p", required=True, type=Path, help="prior run folder or checkpoint folder")
    p.add_argument("--codec", type=Path, help="translator run (default: the codec recorded in the prior)")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--num-samples", "-n", type=int, default=4, help="samples (per input)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens (1 = greedy)")
    p.add_argument("--top-p", type=float, help="sample among the most likely tokens holding probability p")
    p.add_argument("--stride", help="sliding-window stride ROWSxCOLS in tokens (default: half the context)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same samples")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_prior(args: argparse.Namespace):
    """(prior, codec, codec cfg, device), checking the prior belongs to the codec."""
    from vqi2i.train.prior_trainer import open_prior_with_codec
    from vqi2i.train.runtime import select_device

    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    device = select_device(args.device)
    prior, _, codec, codec_cfg = open_prior_with_codec(args.prior, args.codec, device)
    return prior, codec, codec_cfg, device


def parse_pair(text: str, name: str) -> tuple[int, int]:
    """'16x24' -> (16, 24); '16' -> (16, 16)."""
    parts = text.lower().split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UserError(f"{name} must look like ROWSxCOLS with positive integers (e.g. 16x24), got '{text}'")
    return values[0], values[1]


def sampler_kwargs(args: argparse.Namespace, device: torch.device) -> dict:
    """Keyword arguments of `vqi2i.sampling.sample_grid` from the command line."""
    from vqi2i.sampling import SamplingOptions

    return {
        "options": SamplingOptions(args.temperature, args.top_k, args.top_p),
        "generator": torch.Generator(device=device).manual_seed(int(args.seed)),
        "stride": parse_pair(args.stride, "--stride") if args.stride else None,
        "progress": not args.no_progress,
    }


def check_domain(name: str, flag: str) -> str:
    if name not in ("a", "b"):
        raise UserError(f"{flag} must be a or b, got '{name}'")
    return name


def min_image_size(codec, codec_cfg) -> int:
    """The smallest image side the codec takes: two tokens for the decoder, and the style encoder's
    strided convolutions (multimodal)."""
    least = 2 * codec.factor
    if codec.multimodal:
        least = max(least, 2 ** int(codec_cfg.model.style_downs))
    return least


def check_image_size(x: torch.Tensor, codec, codec_cfg, what: str) -> None:
    h, w = x.shape[-2:]
    least = min_image_size(codec, codec_cfg)
    if min(h, w) < least:
        raise UserError(f"{what} is {w}x{h} px once fitted; this codec needs at least {least}x{least}")


def reference_style(codec, codec_cfg, path: str, domain: str, device: torch.device) -> torch.Tensor:
    """The style of a reference image of `domain` -> [1, S]."""
    from vqi2i.apps.common import fit_to_factor
    from vqi2i.images import load_image

    ref_path = Path(path)
    if not ref_path.is_file():
        raise UserError(f"--style must be 'random', 'own' or an image file; {ref_path} is none of these")
    ref, _ = fit_to_factor(load_image(ref_path, codec.in_channels)[None], codec.factor, "resize")
    check_image_size(ref, codec, codec_cfg, f"style reference {ref_path}")
    return codec.encode_style(ref.to(device), domain)


def prepare_style(codec, codec_cfg, spec: str, domain: str, device, own_domain: str | None = None):
    """Check a --style before any sampling: 'random', 'own' (the input's style, only in its own domain)
    or a reference image of `domain`, which is encoded now -> 'random', 'own' or a style [1, S]."""
    if spec == "random":
        return spec
    if spec == "own":
        if own_domain is None:
            raise UserError("--style own needs an input image; use 'random' or a reference image")
        if domain != own_domain:
            raise UserError(f"--style own keeps the input's style, which only exists in its own domain "
                            f"({own_domain}); to render in {domain} use --style random or a reference image")
        return spec
    with torch.no_grad():
        return reference_style(codec, codec_cfg, spec, domain, device)


def decode_styles(codec, style, n: int, generator: torch.Generator, device,
                  own_image: torch.Tensor | None = None, own_domain: str | None = None) -> torch.Tensor | None:
    """n styles to decode with, from a `prepare_style` result; None for the unimodal variant (one fixed
    style per domain)."""
    if not codec.multimodal:
        return None
    if isinstance(style, torch.Tensor):
        return style.expand(n, -1)
    if style == "random":
        return codec.sample_style(n, generator, device)
    return codec.encode_style(own_image.to(device), own_domain).expand(n, -1)


def report(what: str, tokens: int, seconds: float, out: Path) -> None:
    rate = tokens / seconds if seconds > 0 else float("inf")
    print(f"{what}: sampled {tokens} tokens in {seconds:.2f} s ({rate:.1f} tokens/s); wrote {out}")


def load_inputs(path: Path, codec, codec_cfg, size: str | None) -> list[tuple[Path, torch.Tensor]]:
    """Input images as [1, C, H, W]: resized (shorter side) to the codec's training size unless
    `size` says otherwise ('native' keeps it), then centre-cropped to a multiple of the factor."""
    from vqi2i.apps.common import collect_inputs, fit_to_factor
    from vqi2i.data.transforms import resize_shorter
    from vqi2i.images import load_image

    if size is None:
        target = codec_cfg.data.get("size")
        target = int(target) if isinstance(target, int) else None
    elif size == "native":
        target = None
    else:
        try:
            target = int(size)
        except ValueError:
            target = 0
        if target < codec.factor:
            raise UserError(f"--size must be 'native' or a pixel size >= {codec.factor}, got '{size}'")
    images = []
    for p in collect_inputs(path):
        x = resize_shorter(load_image(p, codec.in_channels), target)
        x, _ = fit_to_factor(x[None], codec.factor, "crop")
        check_image_size(x, codec, codec_cfg, f"input {p}")
        images.append((p, x))
    return images


def add_input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", "-i", required=True, type=Path, help="an image or a folder of images")
    p.add_argument("--from", dest="src", required=True, help="the domain of the input images: a or b")
    p.add_argument("--to", dest="dst", help="render the results in this domain (default: the input's)")
    p.add_argument("--style", default=None,
                   help="'own' (the input's style; default when --to is the input's domain), 'random', "
                   "or a reference image of the target domain")
    p.add_argument("--size", help="resize inputs' shorter side to this (default: the codec's training size; "
                   "'native' keeps them)")


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
    from vqi2i.apps.common import check_outputs_free
    from vqi2i.images import save_grid, save_image
    from vqi2i.sampling import check_grid_fits, generate_grids

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
