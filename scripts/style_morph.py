"""Morph one image through style space: an animated GIF/WebP and a strip, or a whole folder in step.

    python scripts/style_morph.py -c runs/mine -i photo.png -d a2b -o out/morph              # 3 random styles
    python scripts/style_morph.py -c runs/mine -i photo.png -d a2b -o out/morph --styles r1.png,r2.png,r3.png --loop
    python scripts/style_morph.py -c runs/mine -i photos/ -d a2b -o out/morph                # every image, same path
    python scripts/style_morph.py -c runs/mine -i frames/ -d a2b -o out/morph --sequence     # frame k gets style k

A path through style space: keyframe styles (random N(0, I) styles from --seed, or the styles of exemplar
images of the target domain) joined by --frames steps of linear (as `vqi2i interpolate`) or spherical
interpolation. The content of each input is encoded once and decoded with every style of the path.
Outputs: STEM_morph.gif / .webp (--format) and STEM_morph_strip.png (the input and --strip frames of the
path); for a folder also grid.png (one row per image). With --sequence the folder's images are the frames
of one animation and image k is decoded with the style k of the path (sequence.gif, frames/NAME.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import features

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
from vqi2i.fileio import atomic_path
from vqi2i.images import load_image, save_grid, save_image, to_pil

FORMATS = ("gif", "webp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="style_morph", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    add_model_args(p)
    add_translation_args(p, "an image, or a folder of images")
    p.add_argument("--styles", default="random", help="'random' or REF1,REF2[,...]: exemplars of the target domain")
    p.add_argument("--keyframes", "-k", type=int, default=3, help="random keyframe styles (>= 2; default 3)")
    p.add_argument("--frames", type=int, default=8, help="frames from one keyframe to the next (>= 1; default 8)")
    p.add_argument("--loop", action="store_true", help="return to the first style at the end")
    p.add_argument("--interp", default="linear", choices=("linear", "slerp"), help="how to go between keyframes")
    p.add_argument("--intra", action="store_true", help="intra-domain: re-render inputs in their own domain")
    p.add_argument("--format", default="gif", help="animation formats, comma-separated: gif, webp (default gif)")
    p.add_argument("--duration", type=int, default=80, help="milliseconds per animation frame (default 80)")
    p.add_argument("--strip", type=int, default=6, help="frames shown in the strip PNG (default 6)")
    p.add_argument("--sequence", action="store_true",
                   help="a folder is one sequence: image k gets style k of the path (one animation)")
    p.add_argument("--batch-size", type=int, default=8, help="styles decoded per forward pass")
    add_fit_args(p)
    return p


# -- the path through style space ---------------------------------------------------------------------


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between styles a and b [S] (linear when they are (anti)parallel)."""
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a / na.clamp_min(1e-8), b / nb.clamp_min(1e-8)).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def style_path(keys: torch.Tensor, frames: int, *, loop: bool = False, interp: str = "linear") -> torch.Tensor:
    """Keyframe styles [K, S] -> the path [(K - 1) * frames + 1, S] (K * frames with loop, which ends one
    step before the first style again): `frames` steps from each keyframe to the next, keyframes exact."""
    if keys.dim() != 2 or keys.shape[0] < 2 or frames < 1:
        raise ValueError("need keys [K >= 2, S] and frames >= 1")
    stops = torch.cat([keys, keys[:1]]) if loop else keys
    path = []
    for a, b in zip(stops[:-1], stops[1:]):
        for j in range(frames):
            t = j / frames
            path.append(slerp(a, b, t) if interp == "slerp" else (1 - t) * a + t * b)
    if not loop:
        path.append(stops[-1])
    return torch.stack(path)


def resample_path(path: torch.Tensor, count: int) -> torch.Tensor:
    """`count` styles evenly spaced along a path [P, S] (linear between its points): one per frame of a sequence."""
    if count == 1:
        return path[:1]
    pos = torch.linspace(0, path.shape[0] - 1, count)
    lo = pos.floor().long().clamp(max=path.shape[0] - 1)
    hi = (lo + 1).clamp(max=path.shape[0] - 1)
    w = (pos - lo)[:, None]
    return (1 - w) * path[lo] + w * path[hi]


def strip_indices(total: int, count: int) -> list[int]:
    """`count` indices spread evenly over range(total), first and last included."""
    count = max(1, min(count, total))
    if count == 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def keyframe_styles(spec: str, count: int, model, cfg, dst: str, device, seed: int) -> torch.Tensor:
    """The keyframe styles [K, S] on the CPU: `count` random styles from `seed`, or exemplars REF1,REF2,..."""
    if spec == "random":
        if count < 2:
            raise UserError(f"--keyframes must be >= 2, got {count}")
        return model.sample_style(count, make_generator(seed), "cpu")
    refs = [Path(r) for r in spec.split(",") if r.strip()]
    if len(refs) < 2:
        raise UserError(f"--styles must be 'random' or at least two exemplar images REF1,REF2[,...]; got '{spec}'")
    styles = []
    for ref in refs:
        if not ref.is_file():
            raise UserError(f"style exemplar {ref} is not a file")
        styles.append(encode_reference(model, cfg, ref, dst, device)[0].cpu())
    return torch.stack(styles)


# -- rendering ----------------------------------------------------------------------------------------


@torch.no_grad()
def render_styles(model, image: torch.Tensor, styles: torch.Tensor, dst: str, *, fit: str, device,
                  batch_size: int = 8) -> torch.Tensor:
    """Image [C, H, W] decoded in `dst` with each style [P, S] -> frames [P, C, H', W'] on the CPU
    (the content is encoded once)."""
    x, size = fit_to_factor(image[None], model.factor, fit)
    _, z_q = model.encode_content(x.to(device))
    frames = []
    for start in range(0, styles.shape[0], batch_size):
        s = styles[start : start + batch_size].to(device)
        frames.append(model.decode(z_q.expand(s.shape[0], -1, -1, -1), s, dst).float().cpu())
    y = torch.cat(frames)
    return unfit(y, size) if fit == "pad" else y


def save_animation(frames: torch.Tensor, path: Path, *, duration: int, overwrite: bool) -> Path:
    """Frames [P, C, H, W] in [-1, 1] -> an animated GIF or WebP (from the suffix), looping, written atomically."""
    images = [to_pil(f).convert("RGB") for f in frames]
    fmt = {".gif": "GIF", ".webp": "WEBP"}[path.suffix.lower()]
    options = {"optimize": False} if fmt == "GIF" else {"lossless": False, "quality": 90, "method": 4}
    with atomic_path(path, overwrite=overwrite) as tmp:
        images[0].save(tmp, format=fmt, save_all=True, append_images=images[1:], duration=duration, loop=0,
                       **options)
    return path


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise UserError(f"--format must be gif, webp or gif,webp; got '{text}'")
    if "webp" in formats:
        if not features.check("webp"):
            raise UserError("this Pillow has no WebP support; use --format gif")
    return list(dict.fromkeys(formats))


def check_args(args: argparse.Namespace) -> None:
    for name, least in (("frames", 1), ("strip", 1), ("duration", 1), ("batch_size", 1)):
        if getattr(args, name) < least:
            raise UserError(f"--{name.replace('_', '-')} must be >= {least}, got {getattr(args, name)}")


def output_paths(args: argparse.Namespace, inputs: list[Path], formats: list[str]) -> list[Path]:
    if args.sequence:
        return [args.out / f"sequence.{f}" for f in formats] + [args.out / "sequence_strip.png"] + [
            args.out / "frames" / f"{p.stem}.png" for p in inputs]
    paths = [args.out / f"{p.stem}_morph{suffix}" for p in inputs for suffix in [*(f".{f}" for f in formats),
                                                                              "_strip.png"]]
    return paths + ([args.out / "grid.png"] if len(inputs) > 1 else [])


def run(args: argparse.Namespace) -> int:
    src, dst = parse_direction(args.direction)
    dst = src if args.intra else dst
    check_args(args)
    formats = parse_formats(args.format)
    inputs = collect_inputs(args.input)
    if args.sequence and not args.input.is_dir():
        raise UserError("--sequence needs a folder of images (its frames)")
    stems = [p.stem for p in inputs]
    if len(set(stems)) != len(stems):
        raise UserError(f"two inputs in {args.input} share a name stem; their outputs would collide")
    check_outputs_free(output_paths(args, inputs, formats), args.overwrite)

    model, cfg, device = open_model(args)
    if not model.multimodal:
        raise UserError("this checkpoint is the unimodal variant: one fixed style per domain, nothing to morph")
    keys = keyframe_styles(args.styles, args.keyframes, model, cfg, dst, device, args.seed)
    path = style_path(keys, args.frames, loop=args.loop, interp=args.interp)
    images = [load_image(p, model.in_channels) for p in inputs]
    for p, im in zip(inputs, images):
        check_min_size(fit_to_factor(im[None], model.factor, args.fit)[0], 2 * model.factor, f"input {p}")

    if args.sequence:
        styles = resample_path(path, len(images))
        frames = [render_styles(model, im, s[None], dst, fit=args.fit, device=device)[0]
                  for im, s in zip(images, styles)]
        if len({tuple(f.shape) for f in frames}) > 1:
            raise UserError(f"the images of {args.input} differ in size; an animation needs frames of one size")
        for p, f in zip(inputs, frames):
            save_image(f, args.out / "frames" / f"{p.stem}.png", overwrite=args.overwrite)
        stack = torch.stack(frames)
        for f in formats:
            save_animation(stack, args.out / f"sequence.{f}", duration=args.duration, overwrite=args.overwrite)
        pick = strip_indices(len(frames), args.strip)
        save_grid([[images[i] for i in pick], [frames[i] for i in pick]], args.out / "sequence_strip.png",
                  overwrite=args.overwrite, labels=["input", "styled"])
        print(f"wrote {len(frames)} frames and sequence.{'/'.join(formats)} to {args.out} ({src}2{dst})")
        return 0

    sheet = []
    for p, im in zip(inputs, images):
        frames = render_styles(model, im, path, dst, fit=args.fit, device=device, batch_size=args.batch_size)
        for f in formats:
            save_animation(frames, args.out / f"{p.stem}_morph.{f}", duration=args.duration, overwrite=args.overwrite)
        row = [im, *frames[strip_indices(len(frames), args.strip)]]
        save_grid([row], args.out / f"{p.stem}_morph_strip.png", overwrite=args.overwrite)
        sheet.append(row)
    if len(inputs) > 1:
        save_grid(sheet, args.out / "grid.png", overwrite=args.overwrite)
    print(f"wrote {len(inputs)} morph(s) of {len(path)} frames ({keys.shape[0]} keyframes, {args.interp}) "
          f"to {args.out} ({src}2{dst})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"style_morph: error: {e}", file=sys.stderr)
        return e.exit_code
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        print(f"style_morph: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
