"""`vqi2i encode`: images -> content-token grids, one `.npy` per image plus a `tokens.json` manifest.

The tokens are the domain-invariant content of an image: the input of the content prior (stage 2)
and of every generate/extend/complete command. The manifest names the codec checkpoint (a hash of its
weights), the factor and K, so token files are never decoded with a codebook they were not made with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vqi2i.apps.common import add_model_args, check_outputs_free, collect_inputs, fit_to_factor, open_model
from vqi2i.checkpoint import checkpoint_id
from vqi2i.errors import UserError
from vqi2i.fileio import atomic_path, atomic_write_text
from vqi2i.images import load_image

MANIFEST = "tokens.json"
FORMAT_VERSION = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="encode images into content-token grids (.npy)",
        description="Encode images with a trained codec: each image becomes a token grid [H/f, W/f] saved as "
        f"NAME.npy (int16, or int32 when K > 32767), and {MANIFEST} records the checkpoint id, f and K.",
    )
    add_model_args(p)
    p.add_argument("--input", "-i", required=True, type=Path, help="an image or a folder of images")
    p.add_argument("--out", "-o", required=True, type=Path, help="output folder")
    p.add_argument(
        "--fit", default="pad", choices=("pad", "crop", "resize"),
        help="how to reach a multiple of f: reflect-pad (default), centre-crop or resize",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (same-sized images only)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=run)


def token_dtype(n_embed: int) -> np.dtype:
    """The smallest signed integer type that holds every token id."""
    return np.dtype(np.int16) if n_embed <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


@torch.no_grad()
def encode_images(
    model, images: list[torch.Tensor], *, fit: str, batch_size: int, device: torch.device, progress: bool = False
) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """For each image [C, H, W]: (tokens [h, w] int64 on the CPU, the (H', W') size that was encoded).

    Same-sized images are encoded together, batch_size at a time."""
    fitted = [fit_to_factor(im[None], model.factor, fit)[0] for im in images]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(fitted):
        by_size.setdefault(tuple(x.shape[-2:]), []).append(i)
    results: list = [None] * len(images)
    bar = tqdm(total=len(images), desc="encode", unit="img", disable=not progress)
    for size, indices in by_size.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            tokens, _ = model.encode_content(torch.cat([fitted[i] for i in chunk]).to(device))
            for j, i in enumerate(chunk):
                results[i] = (tokens[j].cpu(), size)
            bar.update(len(chunk))
    bar.close()
    return results


def read_tokens(folder: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest of an encoded folder and its token grids by file name, checked against the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder} holds no {MANIFEST}; make one with `vqi2i encode`")
    try:
        manifest = json.loads(path.read_text())
        entries = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a vqi2i token manifest ({type(e).__name__})") from None
    grids = {}
    for entry in entries:
        try:
            grid = np.load(folder / entry["tokens"], allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read token file {folder / entry['tokens']}: {e}") from None
        if list(grid.shape) != list(entry["grid"]):
            raise UserError(f"{entry['tokens']} has shape {list(grid.shape)}, the manifest says {entry['grid']}")
        grids[entry["tokens"]] = grid
    return manifest, grids


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    inputs = collect_inputs(args.input)
    stems: dict[str, Path] = {}
    for p in inputs:
        if p.stem in stems:
            raise UserError(f"{stems[p.stem]} and {p} would both be written to {p.stem}.npy; rename one")
        stems[p.stem] = p
    outputs = [args.out / f"{p.stem}.npy" for p in inputs]
    check_outputs_free([*outputs, args.out / MANIFEST], args.overwrite)

    model, cfg, device = open_model(args)
    images = [load_image(p, model.in_channels) for p in inputs]
    encoded = encode_images(
        model, images, fit=args.fit, batch_size=args.batch_size, device=device, progress=len(images) > 1
    )
    dtype = token_dtype(model.n_embed)
    entries = []
    for src, image, out, (tokens, size) in zip(inputs, images, outputs, encoded):
        grid = tokens.numpy().astype(dtype)
        with atomic_path(out, overwrite=args.overwrite) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.save would append .npy to the temp name
                np.save(f, grid, allow_pickle=False)
        entries.append({
            "tokens": out.name, "source": str(src), "image_size": list(image.shape[-2:]),
            "encoded_size": list(size), "grid": list(grid.shape),
        })  # fmt: skip
    manifest = {
        "format": "vqi2i-tokens", "version": FORMAT_VERSION,
        "checkpoint": str(model.checkpoint_dir), "checkpoint_id": checkpoint_id(model.checkpoint_dir),
        "factor": model.factor, "n_embed": model.n_embed, "embed_dim": int(cfg.model.embed_dim),
        "in_channels": model.in_channels, "dtype": dtype.name, "fit": args.fit, "files": entries,
    }  # fmt: skip
    atomic_write_text(args.out / MANIFEST, json.dumps(manifest, indent=2) + "\n", overwrite=args.overwrite)
    shapes = sorted({f"{e['grid'][0]}x{e['grid'][1]}" for e in entries})
    print(f"wrote {len(entries)} token grid(s) ({', '.join(shapes)}, {dtype.name}, K={model.n_embed}) to {args.out}")
    return 0
