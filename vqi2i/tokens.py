"""Content-token cache: the training images of both domains (and their mirror images) encoded once by a
frozen codec, so that the prior trains on token grids instead of re-encoding images every epoch.

    CACHE_DIR/<codec checkpoint_id>-<phase>-<key>.safetensors
        tokens   int16/int32 [N, h, w]  content tokens
        domain   uint8 [N]              0 = a, 1 = b
        flipped  uint8 [N]              1 for the token grid of the horizontally mirrored image
        image    int32 [N]              index of the source image within its domain
    metadata: codec checkpoint_id, phase, data root, image size, number of images

`key` hashes everything the tokens depend on besides the weights (data root, file names and sizes,
resize/crop settings, flips), so a changed data set gets a new cache file instead of a stale one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from vqi2i.data import build_dataset
from vqi2i.errors import UserError
from vqi2i.fileio import atomic_path
from vqi2i.images import load_image

DOMAIN_IDS = {"a": 0, "b": 1}


@dataclass
class TokenSet:
    tokens: torch.Tensor  # [N, h, w] int64
    domain: torch.Tensor  # [N] uint8, 0 = a, 1 = b
    flipped: torch.Tensor  # [N] uint8
    image: torch.Tensor  # [N] int64, index of the source image within its domain

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.tokens.shape[1]), int(self.tokens.shape[2])


def _domain_images(data_cfg, phase: str) -> dict[str, list[tuple[str, Callable[[], torch.Tensor]]]]:
    """For each domain, (path, loader) of every image of `phase`, loaded as the codec saw them at
    evaluation time: resized and centre-cropped, never flipped."""
    ds = build_dataset(data_cfg, phase, train=False, seed=0)
    if getattr(ds, "aligned", False):  # paired data: every pair gives one image of each domain
        out: dict[str, list] = {"a": [], "b": []}
        for i in range(len(ds)):
            pa, pb = ds.pairs[i]
            out["a"].append((str(pa), lambda i=i: ds[i]["a"]))
            out["b"].append((str(pb), lambda i=i: ds[i]["b"]))
        return out

    def loader(path):
        return lambda: ds.transform([load_image(path, ds.channels)], [path], None)[0]

    return {"a": [(str(p), loader(p)) for p in ds.paths_a], "b": [(str(p), loader(p)) for p in ds.paths_b]}


def cache_key(codec_id: str, data_cfg, phase: str, files: dict[str, list[str]], flip: bool) -> str:
    desc = {
        "codec": codec_id,
        "phase": phase,
        "root": str(Path(str(data_cfg.get("root"))).expanduser().resolve()),
        "size": str(data_cfg.get("size")),
        "crop": str(data_cfg.get("crop")),
        "channels": int(data_cfg.get("channels", 3)),
        "layout": str(data_cfg.get("layout", "folders")),
        "flip": flip,
        "files": {d: [(Path(p).name, Path(p).stat().st_size) for p in ps] for d, ps in files.items()},
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:12]


@torch.no_grad()
def encode_token_set(model, images: dict[str, list], flip: bool, device, batch_size: int = 32,
                     progress: bool = True) -> TokenSet:
    """Encode every image (and its mirror image when `flip`) of both domains with the frozen codec."""
    was_training = model.training
    model.eval()
    tokens, domains, flips, index = [], [], [], []
    total = sum(len(v) for v in images.values())
    bar = tqdm(total=total, desc="encoding tokens", unit="img", disable=not progress, leave=False)
    for d, items in images.items():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            x = [load() for _, load in chunk]
            sizes = {tuple(t.shape[-2:]) for t in x}
            if len(sizes) > 1:
                raise UserError(
                    f"images of {d} have different sizes after resizing ({sorted(sizes)[:2]}...); the prior "
                    "needs one token-grid size: set data.crop in the codec's config or the prior's data.crop"
                )
            x = torch.stack(x).to(device)
            variants = [(x, 0)] + ([(x.flip(-1), 1)] if flip else [])
            for xs, flipped in variants:
                t, _ = model.encode_content(xs)
                tokens.append(t.cpu())
                domains.append(torch.full((len(chunk),), DOMAIN_IDS[d], dtype=torch.uint8))
                flips.append(torch.full((len(chunk),), flipped, dtype=torch.uint8))
                index.append(torch.arange(start, start + len(chunk)))
            bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    shapes = {tuple(t.shape[1:]) for t in tokens}
    if len(shapes) != 1:
        raise UserError(f"the two domains give token grids of different sizes {sorted(shapes)}; set data.crop")
    return TokenSet(torch.cat(tokens), torch.cat(domains), torch.cat(flips), torch.cat(index))


def save_token_set(ts: TokenSet, path: Path, metadata: dict[str, str]) -> None:
    dtype = torch.int16 if int(ts.tokens.max()) < 2**15 else torch.int32
    tensors = {"tokens": ts.tokens.to(dtype).contiguous(), "domain": ts.domain, "flipped": ts.flipped,
               "image": ts.image.to(torch.int32)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})


def load_token_set(path: Path) -> TokenSet:
    try:
        t = load_file(str(path))
        return TokenSet(t["tokens"].long(), t["domain"], t["flipped"], t["image"].long())
    except (SafetensorError, OSError, KeyError) as e:
        raise UserError(f"token cache {path} is unreadable ({e}); delete it to re-extract") from None


def cached_tokens(model, codec_id: str, data_cfg, phase: str, cache_dir: Path, device, *, flip: bool = True,
                  batch_size: int = 32, progress: bool = True) -> tuple[TokenSet, Path, bool]:
    """The token grids of `phase` for this codec: read from the cache, or encoded once and cached.
    Returns (tokens, cache file, whether it was freshly encoded)."""
    images = _domain_images(data_cfg, phase)
    key = cache_key(codec_id, data_cfg, phase, {d: [p for p, _ in v] for d, v in images.items()}, flip)
    path = Path(cache_dir) / f"{codec_id}-{phase}-{key}.safetensors"
    if path.is_file():
        ts = load_token_set(path)
        if int(ts.tokens.max()) >= model.n_embed:
            raise UserError(f"token cache {path} holds tokens beyond the codebook of {model.n_embed}; delete it")
        return ts, path, False
    ts = encode_token_set(model, images, flip, device, batch_size, progress)
    meta = {"codec_checkpoint_id": codec_id, "phase": phase, "data_root": data_cfg.get("root"),
            "grid": f"{ts.grid[0]}x{ts.grid[1]}", "images": sum(len(v) for v in images.values()), "flip": flip}
    save_token_set(ts, path, meta)
    return ts, path, True
