"""Synthetic landscapes for tests and smoke runs: one scene structure, two seasons.

A scene (horizon, sun, mountain ridges, a lake, trees) is drawn in normalised coordinates from a
scene seed; a palette turns it into a "summer" picture (domain A: greens, blue sky) or a "winter"
picture (domain B: snow, gray-blue sky, dark trees), and a per-image look (time of day, colour
jitter, haze) varies the style within a domain, so multimodal styles have something to model.

Train scenes of A and B come from independent seeds (unpaired) unless `--shared-train` draws trainA/NAME
and trainB/NAME from one scene seed (each with its own look: the paired ceiling's data). Test scenes are
shared: testA/0007.png and testB/0007.png show the same landscape in the two seasons, which gives ground
truth for evaluation.
Everything is numpy, deterministic by seed: the same arguments write byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vqi2i.errors import UserError

SPLITS = ("trainA", "trainB", "testA", "testB")
MANIFEST = "scenes.json"
FORMAT_VERSION = 1
PROFILE_SAMPLES = 192  # ridge profiles are stored at a fixed resolution, so a scene looks alike at any size
SUPERSAMPLE = 2  # render at 2x and box-filter down: smooth edges without a drawing library


# ----------------------------------------------------------------------------- scene structure

@dataclass
class Tree:
    x: float  # centre, in [0, 1] of the width
    base: float  # y of the foot, in [0, 1] of the height (0 = top)
    height: float
    width: float


@dataclass
class Scene:
    """The shared structure: everything that is the same in summer and in winter."""

    horizon: float
    sun: tuple[float, float, float]  # x, y, radius
    ridges: list[np.ndarray]  # far to near, each the ridge-top y over PROFILE_SAMPLES columns
    lake: tuple[float, float, float, float] | None  # centre x, centre y, radius x, radius y
    trees: list[Tree]


def _smooth_walk(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A random walk, Gaussian-smoothed and scaled to [0, 1]: a plausible mountain skyline."""
    pad = int(3 * sigma) + 1
    walk = np.cumsum(rng.normal(size=PROFILE_SAMPLES + 2 * pad))
    t = np.arange(-pad, pad + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    smooth = np.convolve(walk, kernel / kernel.sum(), mode="valid")[:PROFILE_SAMPLES]
    smooth -= smooth.min()
    return smooth / max(float(smooth.max()), 1e-6)


def _near_lake(x: float, y: float, lake: tuple[float, float, float, float]) -> bool:
    cx, cy, rx, ry = lake
    return ((x - cx) / (rx + 0.05)) ** 2 + ((y - cy) / (ry + 0.04)) ** 2 <= 1


def random_scene(rng: np.random.Generator) -> Scene:
    horizon = rng.uniform(0.58, 0.72)
    sun = (rng.uniform(0.12, 0.88), rng.uniform(0.1, horizon - 0.3), rng.uniform(0.045, 0.08))
    n_ridges = int(rng.integers(2, 4))
    ridges = []
    for k in range(n_ridges):
        near = k / (n_ridges - 1)  # 0 = farthest ridge, 1 = nearest
        top = rng.uniform(0.22, 0.34) + 0.16 * near  # highest point of this ridge
        walk = _smooth_walk(rng, sigma=rng.uniform(3.0, 8.0))
        ridges.append(horizon - (horizon - top) * (0.25 + 0.75 * walk))
    lake = None
    if rng.random() < 0.6:
        ry = rng.uniform(0.035, 0.07)
        cy = horizon + ry + rng.uniform(0.02, 0.12)
        lake = (rng.uniform(0.3, 0.7), cy, rng.uniform(0.15, 0.3), ry)
    trees = []
    for _ in range(int(rng.integers(3, 9))):
        for _attempt in range(10):  # keep trees out of the lake
            x, base = rng.uniform(0.03, 0.97), rng.uniform(horizon + 0.02, 0.98)
            if lake is None or not _near_lake(x, base, lake):
                break
        else:
            continue
        depth = (base - horizon) / (1 - horizon)  # 0 at the horizon, 1 at the bottom edge
        height = (0.08 + 0.22 * depth) * rng.uniform(0.8, 1.2)
        trees.append(Tree(x, base, height, height * rng.uniform(0.4, 0.55)))
    trees.sort(key=lambda t: t.base)  # paint far trees first
    return Scene(horizon, sun, ridges, lake, trees)


# ----------------------------------------------------------------------------- palettes and looks

_COLOR_NAMES = ("sky_top", "sky_low", "sun", "ridge_far", "ridge_near", "ground_far", "ground_near",
                "lake", "tree", "trunk", "snow")


@dataclass
class Palette:
    """A season: the colours of a clear midday and of dusk (a look blends between them)."""

    name: str
    day: dict[str, tuple[float, float, float]]
    dusk: dict[str, tuple[float, float, float]]
    snowy: bool  # snow on tree tiers
    ripple: float  # strength of lake ripples (0 for ice)


SUMMER = Palette(
    "summer",
    day=dict(sky_top=(0.22, 0.47, 0.88), sky_low=(0.68, 0.84, 1.0), sun=(1.0, 0.94, 0.55),
             ridge_far=(0.42, 0.56, 0.74), ridge_near=(0.22, 0.50, 0.24), ground_far=(0.45, 0.72, 0.30),
             ground_near=(0.24, 0.54, 0.16), lake=(0.18, 0.42, 0.74), tree=(0.07, 0.30, 0.11),
             trunk=(0.36, 0.22, 0.10), snow=(0.07, 0.30, 0.11)),
    dusk=dict(sky_top=(0.18, 0.18, 0.48), sky_low=(1.0, 0.58, 0.30), sun=(1.0, 0.55, 0.22),
              ridge_far=(0.46, 0.34, 0.50), ridge_near=(0.17, 0.30, 0.17), ground_far=(0.36, 0.46, 0.20),
              ground_near=(0.20, 0.32, 0.12), lake=(0.42, 0.33, 0.46), tree=(0.05, 0.17, 0.07),
              trunk=(0.24, 0.14, 0.07), snow=(0.05, 0.17, 0.07)),
    snowy=False,
    ripple=0.05,
)

WINTER = Palette(
    "winter",
    day=dict(sky_top=(0.52, 0.62, 0.76), sky_low=(0.84, 0.88, 0.92), sun=(1.0, 1.0, 0.94),
             ridge_far=(0.70, 0.76, 0.86), ridge_near=(0.92, 0.94, 0.98), ground_far=(0.88, 0.91, 0.96),
             ground_near=(0.97, 0.98, 1.0), lake=(0.68, 0.79, 0.88), tree=(0.09, 0.15, 0.13),
             trunk=(0.20, 0.16, 0.14), snow=(1.0, 1.0, 1.0)),
    dusk=dict(sky_top=(0.22, 0.22, 0.40), sky_low=(0.74, 0.60, 0.70), sun=(1.0, 0.86, 0.80),
              ridge_far=(0.52, 0.50, 0.64), ridge_near=(0.78, 0.75, 0.85), ground_far=(0.73, 0.72, 0.81),
              ground_near=(0.82, 0.82, 0.90), lake=(0.55, 0.55, 0.70), tree=(0.05, 0.07, 0.09),
              trunk=(0.12, 0.10, 0.10), snow=(0.88, 0.86, 0.94)),
    snowy=True,
    ripple=0.0,
)

PALETTES = {"a": SUMMER, "b": WINTER}


@dataclass
class Look:
    """Per-image style within a season."""

    time: float  # 0 = midday, 1 = dusk
    tint: np.ndarray  # [3] colour shift added everywhere
    brightness: float
    haze: float  # how much far ridges fade into the sky


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        time=float(rng.beta(1.0, 1.6)),
        tint=rng.normal(0.0, 0.035, size=3),
        brightness=float(rng.uniform(0.88, 1.08)),
        haze=float(rng.uniform(0.15, 0.6)),
    )


def _colors(palette: Palette, look: Look) -> dict[str, np.ndarray]:
    t = look.time
    mix = {k: (1 - t) * np.asarray(palette.day[k]) + t * np.asarray(palette.dusk[k]) for k in _COLOR_NAMES}
    return {k: v.astype(np.float32) for k, v in mix.items()}


# ----------------------------------------------------------------------------- rendering

def render(scene: Scene, palette: Palette, look: Look, size: int) -> np.ndarray:
    """Draw a scene as a uint8 [size, size, 3] array."""
    n = size * SUPERSAMPLE
    c = _colors(palette, look)
    coords = ((np.arange(n) + 0.5) / n).astype(np.float32)
    y, x = coords[:, None], coords[None, :]

    # sky: vertical gradient, brighter near the horizon, with the sun and its glow
    s = np.clip(y / scene.horizon, 0, 1)[..., None]
    img = np.broadcast_to((1 - s) * c["sky_top"] + s * c["sky_low"], (n, n, 3)).copy()
    sx, sy, sr = scene.sun
    d = np.sqrt((x - sx) ** 2 + (y - sy) ** 2)[..., None]
    img += 0.35 * np.exp(-((d / (3.0 * sr)) ** 2)) * (c["sun"] - img)
    img = np.where(d < sr, c["sun"], img)

    # ridges, far to near: fade into the sky with distance, lit on the sun's side
    profile_x = (np.arange(PROFILE_SAMPLES) + 0.5) / PROFILE_SAMPLES
    light = 1.0 if sx < 0.5 else -1.0
    n_r = len(scene.ridges)
    for k, ridge in enumerate(scene.ridges):
        near = k / max(n_r - 1, 1)
        top = np.interp(coords, profile_x, ridge)[None, :]
        slope = np.gradient(top[0], coords)[None, :]
        base = (1 - near) * c["ridge_far"] + near * c["ridge_near"]
        base = base + look.haze * (1 - near) * (c["sky_low"] - base)
        below = np.clip((y - top) / 0.25, 0, 1)
        shade = 1.0 + 0.12 * np.clip(light * slope * 0.5, -1, 1) * (1 - below) - 0.1 * below
        img = np.where((y >= top)[..., None], base * shade[..., None], img)

    # ground below the horizon, lighter in the distance
    g = np.clip((y - scene.horizon) / (1 - scene.horizon), 0, 1)[..., None]
    img = np.where(y[..., None] >= scene.horizon, (1 - g) * c["ground_far"] + g * c["ground_near"], img)

    # lake: its own colour mixed with the sky it reflects, rippled in summer, flat ice in winter
    if scene.lake is not None:
        lx, ly, rx, ry = scene.lake
        inside = (((x - lx) / rx) ** 2 + ((y - ly) / ry) ** 2 < 1)[..., None]
        mirrored = np.clip((2 * scene.horizon - y) / scene.horizon, 0, 1)[..., None]
        water = 0.6 * c["lake"] + 0.4 * ((1 - mirrored) * c["sky_top"] + mirrored * c["sky_low"])
        water = water * (1 + palette.ripple * np.sin(y * 260.0 + 3.0 * np.sin(x * 17.0)))[..., None]
        img = np.where(inside, water, img)

    for tree in scene.trees:
        _draw_tree(img, tree, c, palette.snowy, light, n)

    img = (img * look.brightness + look.tint).clip(0, 1)
    img = img.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return (img * 255 + 0.5).astype(np.uint8)


def _draw_tree(
    img: np.ndarray, tree: Tree, c: dict[str, np.ndarray], snowy: bool, light: float, n: int
) -> None:
    """A conifer: a trunk and three stacked triangular tiers (snow-capped in winter), drawn in place."""
    top_px = max(int((tree.base - tree.height) * n), 0)
    bottom_px = min(int(tree.base * n) + 1, n)
    left_px = max(int((tree.x - tree.width / 2) * n), 0)
    right_px = min(int((tree.x + tree.width / 2) * n) + 1, n)
    if top_px >= bottom_px or left_px >= right_px:
        return
    y = ((np.arange(top_px, bottom_px) + 0.5) / n)[:, None]
    x = ((np.arange(left_px, right_px) + 0.5) / n)[None, :]
    patch = img[top_px:bottom_px, left_px:right_px]
    h, w = tree.height, tree.width
    trunk = (np.abs(x - tree.x) < 0.07 * w) & (y > tree.base - 0.2 * h) & (y <= tree.base)
    patch[trunk] = c["trunk"]
    sunny_side = (light * (tree.x - x) > 0)[..., None]
    for j in range(3):
        tier_bottom = tree.base - 0.14 * h - j * 0.25 * h
        tier_top = tier_bottom - 0.5 * h + j * 0.04 * h
        half = 0.5 * w * (1 - 0.22 * j)
        along = (y - tier_top) / (tier_bottom - tier_top)  # 0 at the tip, 1 at the bottom edge
        tier = (along >= 0) & (along <= 1) & (np.abs(x - tree.x) <= half * along)
        color = np.where(sunny_side, c["tree"] * 1.25, c["tree"])
        if snowy:
            color = np.where((along < 0.4)[..., None], c["snow"], color)
        patch[:] = np.where(tier[..., None], color, patch)


# ----------------------------------------------------------------------------- the data set

def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


_TRAIN, _TEST = 0, 1
_SCENE, _LOOK = 0, 1


def scene_images(seed: int, split: str, index: int, size: int, shared_train: bool = False) -> np.ndarray:
    """Image `index` of one of SPLITS as uint8 [size, size, 3]: a pure function of its arguments. With
    `shared_train` train image `index` shows the same scene in both domains (its look stays per domain)."""
    domain = split[-1].lower()
    domain_id = 0 if domain == "a" else 1
    if not split.startswith("train"):
        return held_out_scene_with_look(seed, domain, index, index, size)
    scene_domain = 0 if shared_train else domain_id  # independent per domain unless shared
    scene = random_scene(_rng(seed, _TRAIN, scene_domain, index, _SCENE))
    look = random_look(_rng(seed, _TRAIN, domain_id, index, _LOOK))
    return render(scene, PALETTES[domain], look, size)


def held_out_scene_with_look(seed: int, domain: str, index: int, look_index: int, size: int) -> np.ndarray:
    """Test scene `index` (the same scene in both domains) drawn in `domain` with the look of test image `look_index`
    of that domain: what a translator that follows an exemplar perfectly would output (look_index == index: the test
    image itself)."""
    domain_id = {"a": 0, "b": 1}[domain]
    scene = random_scene(_rng(seed, _TEST, 0, index, _SCENE))
    look = random_look(_rng(seed, _TEST, domain_id, look_index, _LOOK))
    return render(scene, PALETTES[domain], look, size)


def test_scenes_with_looks(root: str | os.PathLike, shift: int) -> dict[str, np.ndarray] | None:
    """For a scenes data set written by `vqi2i data scenes` (its scenes.json under `root`): per domain, test scene
    i drawn with the look of test image (i + shift) % n of that domain, uint8 [n, size, size, 3] (shift 0: the test
    images themselves); None for any other data. shift 1 gives each scene under another look of the same season:
    the control for style follow and for same-scene token agreement across seasons."""
    manifest = Path(root) / MANIFEST
    if not manifest.is_file():
        return None
    info = json.loads(manifest.read_text())
    if info.get("kind") != "scenes":
        return None
    seed, n, size = int(info["seed"]), int(info["n_test"]), int(info["size"])
    return {d: np.stack([held_out_scene_with_look(seed, d, i, (i + shift) % n, size) for i in range(n)])
            for d in ("a", "b")}


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} already exists and is not empty (pass --overwrite to replace it)")
        if not (out / MANIFEST).is_file():
            raise UserError(
                f"{out} is not a scenes data set made by vqi2i (no {MANIFEST}); refusing to replace it"
            )


def make_scenes(
    out: str | os.PathLike,
    n_train: int = 200,
    n_test: int = 200,
    size: int = 64,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: bool = True,
    shared_train: bool = False,
) -> Path:
    """Write the summer/winter scenes data set in the CycleGAN layout under `out`; returns `out`.
    `shared_train`: trainA/NAME and trainB/NAME show the same scene (paired training data).

    The images are first written to a temporary folder beside `out` and moved in at the end, so an
    interrupted run never leaves a half-written data set behind."""
    out = Path(out).expanduser()
    if n_train < 1 or n_test < 1:
        raise UserError(f"--n-train and --n-test must be >= 1, got {n_train} and {n_test}")
    if size < 16:
        raise UserError(f"--size must be at least 16 pixels, got {size}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    _prepare_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(max(n_train, n_test) - 1)))
    counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        bar = tqdm(total=sum(counts.values()), desc="scenes", unit="img", disable=not progress)
        for split, count in counts.items():
            (tmp / split).mkdir()
            for i in range(count):
                image = scene_images(seed, split, i, size, shared_train)
                Image.fromarray(image).save(tmp / split / f"{i:0{digits}d}.png")
                bar.update()
        bar.close()
        manifest = {"kind": "scenes", "version": FORMAT_VERSION, "seed": seed, "size": size,
                    "n_train": n_train, "n_test": n_test, "domains": {"a": "summer", "b": "winter"},
                    "test_pairs": "testA/NAME and testB/NAME show the same scene",
                    "train_split": "shared" if shared_train else "disjoint"}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for name in (*SPLITS, MANIFEST):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def register_scenes(data_subparsers) -> argparse.ArgumentParser:
    """Add `vqi2i data scenes`."""
    p = data_subparsers.add_parser(
        "scenes",
        help="write the synthetic summer/winter landscapes (CycleGAN layout)",
        description="Write procedural landscapes: A = summer, B = winter. Train scenes are unpaired; "
        "testA/NAME and testB/NAME show the same scene, so translations can be scored against them.",
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder (gets trainA/ trainB/ testA/ testB/)")
    p.add_argument("--n-train", type=int, default=200, help="training images per domain (default: 200)")
    p.add_argument("--n-test", type=int, default=200, help="test scenes, drawn in both domains (default: 200)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes the same files (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing scenes data set in OUT")
    p.add_argument("--shared-train", action="store_true",
                   help="trainA/NAME and trainB/NAME show the same scene, each with its own look (paired data, "
                        "for the paired ceiling); default: independent scenes per domain")


def run(args: argparse.Namespace) -> int:
    out = make_scenes(args.out, args.n_train, args.n_test, args.size, args.seed, overwrite=args.overwrite,
                      shared_train=args.shared_train)
    same = "trainX/NAME and testX/NAME" if args.shared_train else "testA/NAME and testB/NAME"
    print(f"wrote {2 * (args.n_train + args.n_test)} images to {out} (A = summer, B = winter; "
          f"{same} are the same scene)")
    return 0
