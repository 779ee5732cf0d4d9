"""What the application commands share: model loading, input collection, sizing, seeding; below, what
the prior apps (generate, extend, complete) share: prior loading, sampling options, styles, inputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from vqi2i.checkpoint import load_model
from vqi2i.data.transforms import resize_shorter
from vqi2i.device import select_device, set_threads
from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image, save_image
from vqi2i.inference import open_prior_with_codec
from vqi2i.sampling import SamplingOptions

DIRECTIONS = {"a2b": ("a", "b"), "b2a": ("b", "a")}


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, type=Path, help="training run folder or checkpoint folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--seed", type=int, default=0, help="seed for random styles and sampling")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def add_translation_args(p: argparse.ArgumentParser, input_help: str) -> None:
    """--input, --direction and --out of translate and interpolate."""
    p.add_argument("--input", "-i", required=True, type=Path, help=input_help)
    p.add_argument("--direction", "-d", required=True, help="a2b or b2a")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")


def add_fit_args(p: argparse.ArgumentParser) -> None:
    """--fit and --overwrite of translate and interpolate."""
    p.add_argument("--fit", default="pad", choices=("pad", "crop", "resize"), help="how to reach a multiple of f")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def open_model(args: argparse.Namespace):
    """(model, cfg, device) for the command's --checkpoint and --device."""
    set_threads(args.threads)
    device = select_device(args.device)
    model, cfg = load_model(args.checkpoint, device)
    return model, cfg, device


def parse_direction(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, got '{direction}'")
    return DIRECTIONS[direction]


def collect_inputs(path: Path) -> list[Path]:
    """A single image file, or every image in a folder (sorted)."""
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


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def encode_reference(model, cfg, path: Path, domain: str, device: torch.device) -> torch.Tensor:
    """The style [1, S] of reference image `path` in `domain`, resized to a multiple of the factor."""
    x, _ = fit_to_factor(load_image(path, model.in_channels)[None], model.factor, "resize")
    check_min_size(x, max(4, 2 ** int(cfg.model.style_downs)), f"style reference {path}")
    with torch.no_grad():
        return model.encode_style(x.to(device), domain)


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse before any work if an output exists and --overwrite was not given."""
    if overwrite:
        return
    taken = [p for p in paths if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise UserError(f"output {taken[0]} already exists{more}; pass --overwrite to replace")


# -- the prior apps: generate, extend and complete ----------------------------------------------------


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
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def open_prior(args: argparse.Namespace):
    """(prior, codec, codec cfg, device), checking the prior belongs to the codec."""
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    set_threads(args.threads)
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
    return {
        "options": SamplingOptions(args.temperature, args.top_k, args.top_p),
        "generator": make_generator(args.seed, device),
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


def input_domains(args: argparse.Namespace) -> tuple[str, str, str]:
    """(source domain, target domain, style spec) from --from, --to and --style of extend and complete:
    by default the result is rendered in the input's domain with the input's own style."""
    src = check_domain(args.src, "--from")
    dst = check_domain(args.dst or src, "--to")
    return src, dst, args.style or ("own" if dst == src else "random")


def sample_paths(args: argparse.Namespace, inputs: list[tuple[Path, torch.Tensor]], tag: str) -> dict[Path, list[Path]]:
    """The --num-samples output paths of each input (OUT/STEM_TAG_KKK.png), refused before any work if
    one of them (or OUT/grid.png) exists and --overwrite was not given."""
    names = {p: [args.out / f"{p.stem}_{tag}_{k:03d}.png" for k in range(args.num_samples)] for p, _ in inputs}
    check_outputs_free([q for qs in names.values() for q in qs] + [args.out / "grid.png"], args.overwrite)
    return names


def render_samples(codec, grids: torch.Tensor, style, x: torch.Tensor, src: str, dst: str,
                   generator: torch.Generator, device, paths: list[Path], overwrite: bool) -> torch.Tensor:
    """Decode the sampled token grids [n, h, w] of input x (domain `src`) in `dst` with a `prepare_style`
    result, save them to `paths` -> the images [n, C, H, W] on the CPU."""
    images = decode_samples(codec, grids, style, x, src, dst, generator, device)
    for image, path in zip(images, paths):
        save_image(image, path, overwrite=overwrite)
    return images


def decode_samples(codec, grids: torch.Tensor, style, x: torch.Tensor, src: str, dst: str,
                   generator: torch.Generator, device) -> torch.Tensor:
    """Decode the sampled token grids [n, h, w] of input x (domain `src`) in `dst` with a `prepare_style`
    result -> the images [n, C, H, W] on the CPU (what `render_samples` saves; the web app shows them)."""
    styles = decode_styles(codec, style, grids.shape[0], generator, device, own_image=x, own_domain=src)
    return codec.decode(grids, styles, dst).float().cpu()
