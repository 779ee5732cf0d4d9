"""The glyph benchmark data: one CJK character drawn in two typefaces gives exact ground truth.

`vqi2i data glyphs OUT` renders characters that both fonts really contain (read from their cmaps)
into the CycleGAN layout. Train and test hold different characters (a deterministic split by a
seeded hash of the code point), and a file is named after its code point (`uni4E00.png`), so
testA/uni4E00.png and testB/uni4E00.png are the same character: the ground truth `vqi2i eval`
scores translations against. Training stays unpaired: the loader shuffles the domains independently,
and by default trainA and trainB even hold different characters (the training characters are halved by
another seeded hash), so no character is ever seen in both styles during training; `--shared-train`
puts every training character in both.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from vqi2i.errors import UserError
from vqi2i.fileio import temp_dir

DEFAULT_FONT_A = "AR PL UMing"  # Ming (Song) style
DEFAULT_FONT_B = "AR PL UKai"   # Kai style
# font family (lower case) -> the Debian package that installs it, for the "not installed" hint
DEBIAN_PACKAGES = {"ar pl uming": "fonts-arphic-uming", "ar pl ukai": "fonts-arphic-ukai",
                   "noto color emoji": "fonts-noto-color-emoji"}
INSTALL_HINT = "install the Debian packages fonts-arphic-uming and fonts-arphic-ukai " \
    "(apt-get install fonts-arphic-uming fonts-arphic-ukai) or pass font file paths"
# CJK Unified Ideographs and Extension A: the blocks both AR PL fonts cover (about 19,000 in common).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF))
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
EM_FRACTION = 0.88  # font size as a share of the image side: the widest AR PL glyphs then keep a 6% margin
MANIFEST = "glyphs.json"
FILENAME_RE = re.compile(r"^uni([0-9A-F]{4,6})$")


@dataclass(frozen=True)
class FontFace:
    """One face of a font file (a .ttc collection holds several)."""

    path: str
    index: int
    family: str


def glyph_filename(codepoint: int) -> str:
    return f"uni{codepoint:04X}.png"


def codepoint_from_filename(name: str) -> int | None:
    """The code point a glyph file is named after (`uni4E00.png` -> 0x4E00), or None."""
    match = FILENAME_RE.match(Path(name).stem)
    return int(match.group(1), 16) if match else None


# --- finding fonts ---------------------------------------------------------------------------------

def installed_fonts() -> list[FontFace]:
    """Every face fontconfig knows, one entry per family name it carries."""
    try:
        out = subprocess.run(
            ["fc-list", "-f", "%{file}\t%{index}\t%{family}\n"], capture_output=True, text=True, check=True
        ).stdout
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        raise UserError(f"cannot list installed fonts with fontconfig's fc-list ({e}); "
                        f"install fontconfig, or {INSTALL_HINT}") from e
    faces = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        for family in parts[2].split(","):
            faces.append(FontFace(parts[0], int(parts[1]), family.replace("\\", "").strip()))
    return faces


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or spec.lower().endswith(FONT_SUFFIXES) or Path(spec).exists()


def find_font(
    spec: str, index: int | None = None, faces: list[FontFace] | None = None, install_hint: str = INSTALL_HINT
) -> FontFace:
    """A font by file path or by fontconfig family name.

    'AR PL UMing' picks the first face of that family's collection, 'AR PL UMing TW' a given one.

    `index` chooses the face of a collection (.ttc); by default the face fontconfig names, or 0 for a path.
    `install_hint` ends the error for a family that is not installed and has no known Debian package.
    """
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UserError(f"font file {spec} not found")
        return FontFace(str(path), index or 0, path.stem)
    faces = installed_fonts() if faces is None else faces
    wanted = spec.strip().lower()
    exact = [f for f in faces if f.family.lower() == wanted]
    prefix = [f for f in faces if f.family.lower().startswith(wanted + " ")]
    matches = sorted(exact or prefix, key=lambda f: (f.path, f.index))
    if not matches:
        package = DEBIAN_PACKAGES.get(wanted)
        hint = f"install the Debian package {package}, or pass a font file path" if package else install_hint
        raise UserError(f"font '{spec}' is not installed (fontconfig knows no such family); {hint}")
    face = matches[0]
    return FontFace(face.path, face.index if index is None else index, face.family)


def open_face(face: FontFace):
    """The fontTools font for one face; a clear UserError when the file is not a font."""
    try:
        from fontTools.ttLib import TTCollection, TTFont, TTLibError  # start-up: fontTools takes 70 ms to import
    except ImportError as e:  # a dependency of vqi2i; only a broken install lacks it
        raise UserError("fontTools is missing: reinstall vqi2i (pip install -e .)") from e
    try:
        with open(face.path, "rb") as fh:
            is_collection = fh.read(4) == b"ttcf"
        if is_collection:
            fonts = TTCollection(face.path, lazy=True).fonts
            if not 0 <= face.index < len(fonts):
                raise UserError(f"{face.path} holds {len(fonts)} faces (0-{len(fonts) - 1}); "
                                f"face {face.index} does not exist")
            return fonts[face.index]
        if face.index != 0:
            raise UserError(f"{face.path} is a single font, not a collection: "
                            f"face {face.index} does not exist")
        return TTFont(face.path, lazy=True)
    except (TTLibError, OSError, AssertionError, KeyError, ValueError) as e:
        raise UserError(f"{face.path} is not a font file (TrueType, OpenType or collection): {e}") from e


@functools.lru_cache(maxsize=16)
def font_coverage(face: FontFace) -> frozenset[int]:
    """Code points the font's cmap maps to a real glyph (never the .notdef missing-glyph box)."""
    font = open_face(face)
    try:
        cmap = font.getBestCmap()
        if not cmap and "cmap" not in font:
            raise KeyError("no cmap table")
    except Exception as e:  # noqa: BLE001 - any failure to read the table means the file is not usable
        raise UserError(f"{face.path} is not a usable font (cannot read its character map: {e})") from e
    return frozenset(cp for cp, glyph in (cmap or {}).items() if glyph != ".notdef")


def load_font(face: FontFace, image_size: int) -> ImageFont.FreeTypeFont:
    """The FreeType font at the pixel size every glyph of an image_size-pixel image is drawn with."""
    try:
        return ImageFont.truetype(face.path, size=max(1, round(image_size * EM_FRACTION)), index=face.index)
    except OSError as e:
        raise UserError(f"{face.path} (face {face.index}) cannot be opened by FreeType: {e}") from e


# --- rendering -------------------------------------------------------------------------------------

def render_glyph(font: ImageFont.FreeTypeFont, char: str, size: int) -> Image.Image | None:
    """The character as a grayscale size x size image, black on white, its ink centred; None if it has no ink.

    Every glyph of a font is drawn at the same font size (so relative sizes stay true) and shifted so the
    centre of its ink box is the centre of the image.
    """
    canvas = Image.new("L", (2 * size, 2 * size), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), char, font=font, fill=0)
    ink = Image.eval(canvas, lambda v: 255 - v).getbbox()
    if ink is None:
        return None
    cx, cy = (ink[0] + ink[2]) / 2, (ink[1] + ink[3]) / 2
    left, top = round(cx - size / 2), round(cy - size / 2)
    return canvas.crop((left, top, left + size, top + size))


def rank_characters(codepoints: set[int] | list[int], seed: int) -> list[int]:
    """A fixed pseudo-random order of code points, given by a seeded hash (independent of the set's size)."""
    def key(cp: int) -> bytes:
        return hashlib.sha256(f"{seed}:{cp}".encode()).digest()
    return sorted(set(codepoints), key=key)


def split_characters(kept: list[int], test_ratio: float, min_train: int = 1) -> tuple[list[int], list[int]]:
    """(train, test): the first round(n * test_ratio) ranked characters are held out (at least one, and
    never so many that fewer than `min_train` are left to train on)."""
    if test_ratio <= 0:
        return sorted(kept), []
    n_test = min(len(kept) - min_train, max(1, round(len(kept) * test_ratio)))
    return sorted(kept[n_test:]), sorted(kept[:n_test])


def split_domains(train: list[int] | set[int], seed: int, shared: bool = False) -> tuple[list[int], list[int]]:
    """(train_a, train_b): the training code points of each domain, sorted.

    Disjoint by default: the code points are ranked by a seeded hash (another one than the test split's)
    and halved, trainA taking the first half (one more when odd), so no code point is in both domains.
    `shared` gives both domains every training code point.
    """
    if shared:
        return sorted(train), sorted(train)
    ranked = sorted(set(train), key=lambda cp: hashlib.sha256(f"{seed}:domain:{cp}".encode()).digest())
    half = (len(ranked) + 1) // 2
    return sorted(ranked[:half]), sorted(ranked[half:])


def in_cjk_ranges(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


# --- the data set ----------------------------------------------------------------------------------

def prepare_output(out: Path, overwrite: bool, manifest: str = MANIFEST, what: str = "glyph") -> None:
    """Check `out` may be written: absent, empty, or (with overwrite) a `what` data set holding `manifest`."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} already exists and is not empty (pass --overwrite to replace it)")
        if not (out / manifest).is_file():
            raise UserError(f"{out} is not a {what} data set made by vqi2i (no {manifest}); "
                            "refusing to replace it")


def write_dataset(out: Path, folders: dict[str, dict[str, Image.Image]], manifest_name: str, manifest: dict) -> None:
    """Save folders ({"trainA": {file name: image}, ...}) and the manifest JSON into `out`.

    Everything goes into a fresh folder beside `out` first, then is swapped in: a failure leaves `out` untouched.
    Where `out` is a symbolic link to a folder, the folder it points to is replaced and the link kept.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(out.parent, prefix=f".{out.name}.")
    try:
        for sub, images in folders.items():
            folder = tmp / sub
            folder.mkdir()
            for name, image in images.items():
                image.save(folder / name)
        (tmp / manifest_name).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def build_glyph_dataset(
    out: str | Path,
    font_a: FontFace,
    font_b: FontFace,
    size: int = 64,
    num_chars: int | None = 2000,
    test_ratio: float = 0.1,
    seed: int = 0,
    characters: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    shared_train: bool = False,
) -> dict:
    """Render the glyph data set into out/{trainA,trainB,testA,testB} and write out/glyphs.json; return it.

    Characters come from `characters` when given (in that order), else from the CJK blocks both fonts cover,
    in seeded-hash order; `num_chars` caps how many are kept (None: all). A character either font lacks
    (by its cmap) or draws without ink is skipped and listed in the manifest.

    The training characters are halved between trainA and trainB (disjoint) unless `shared_train`, which puts
    each in both; testA and testB always hold the same characters.
    """
    out = Path(out)
    if size < 8:
        raise UserError(f"--size must be at least 8 pixels, got {size}")
    if not 0 <= test_ratio < 1:
        raise UserError(f"--test-ratio must be in [0, 1), got {test_ratio}")
    if num_chars is not None and num_chars < 2:
        raise UserError(f"--num-chars must be at least 2, got {num_chars}")
    prepare_output(out, overwrite)

    cover_a, cover_b = font_coverage(font_a), font_coverage(font_b)
    if characters:
        wanted = list(dict.fromkeys(ord(c) for c in characters if not c.isspace()))
        lacking = [cp for cp in wanted if cp not in cover_a or cp not in cover_b]
        candidates = [cp for cp in wanted if cp not in lacking]
        if lacking:
            print(f"skipping {len(lacking)} character(s) a font lacks: "
                  + " ".join(f"U+{cp:04X} {chr(cp)}" for cp in lacking[:20]))
    else:
        lacking = []
        candidates = rank_characters({cp for cp in cover_a & cover_b if in_cjk_ranges(cp)}, seed)
    if not candidates:
        raise UserError(f"the fonts {font_a.family} ({font_a.path}) and {font_b.family} ({font_b.path}) "
                        "have no CJK character in common")

    pil_a, pil_b = load_font(font_a, size), load_font(font_b, size)
    target = len(candidates) if num_chars is None else min(num_chars, len(candidates))
    kept: dict[int, tuple[Image.Image, Image.Image]] = {}
    no_ink: list[int] = []
    bar = tqdm(total=target, desc="rendering glyphs", unit="char", disable=not progress)
    for cp in candidates:
        if len(kept) == target:
            break
        img_a, img_b = render_glyph(pil_a, chr(cp), size), render_glyph(pil_b, chr(cp), size)
        if img_a is None or img_b is None:
            no_ink.append(cp)
            continue
        kept[cp] = (img_a, img_b)
        bar.update(1)
    bar.close()
    min_train = 1 if shared_train else 2
    if len(kept) < min_train + (test_ratio > 0):
        raise UserError(f"only {len(kept)} drawable character(s) in common; need at least "
                        f"{min_train + (test_ratio > 0)} for a train/test split"
                        + ("" if shared_train else " with disjoint trainA and trainB (or pass --shared-train)"))
    train, test = split_characters(list(kept), test_ratio, min_train)
    train_a, train_b = split_domains(train, seed, shared_train)

    manifest = {
        "kind": "vqi2i-glyphs",
        "version": 1,
        "font_a": asdict(font_a),
        "font_b": asdict(font_b),
        "size": size,
        "em_fraction": EM_FRACTION,
        "seed": seed,
        "test_ratio": test_ratio,
        "shared_train": shared_train,
        "train_split": "shared" if shared_train else "disjoint",
        "num_train": len(train),
        "num_train_a": len(train_a),
        "num_train_b": len(train_b),
        "num_test": len(test),
        "train": "".join(chr(cp) for cp in train),
        "train_a": "".join(chr(cp) for cp in train_a),
        "train_b": "".join(chr(cp) for cp in train_b),
        "test": "".join(chr(cp) for cp in test),
        "skipped_missing": "".join(chr(cp) for cp in lacking),
        "skipped_no_ink": "".join(chr(cp) for cp in no_ink),
    }
    folders = {
        f"{split}{domain}": {glyph_filename(cp): kept[cp][pick] for cp in cps}
        for split, domain, pick, cps in (("train", "A", 0, train_a), ("train", "B", 1, train_b),
                                         ("test", "A", 0, test), ("test", "B", 1, test))
    }
    write_dataset(out, folders, MANIFEST, manifest)
    return manifest


# --- the command -----------------------------------------------------------------------------------

def register_glyphs(data_subparsers) -> argparse.ArgumentParser:
    """Add `glyphs` to the `vqi2i data` sub-commands."""
    p = data_subparsers.add_parser(
        "glyphs",
        help="render CJK characters in two fonts (a real benchmark with ground truth)",
        description="Render the characters two fonts both contain into trainA/trainB/testA/testB. "
        "Test characters are held out from training; files are named by code point (uni4E00.png), "
        "so testA/X and testB/X are the same character. trainA and trainB hold different characters "
        "unless --shared-train.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument("--font-a", default=DEFAULT_FONT_A,
                   help="domain A font: family name or file (default: %(default)s)")
    p.add_argument("--font-b", default=DEFAULT_FONT_B,
                   help="domain B font: family name or file (default: %(default)s)")
    p.add_argument("--face-a", type=int, default=None, help="face index in a .ttc collection for --font-a")
    p.add_argument("--face-b", type=int, default=None, help="face index in a .ttc collection for --font-b")
    p.add_argument("--size", type=int, default=64,
                   help="image side in pixels (64, 128, 256; default: %(default)s)")
    p.add_argument("--num-chars", type=int, default=2000,
                   help="number of characters, train and test together; 0 for all (default: %(default)s)")
    p.add_argument("--test-ratio", type=float, default=0.1,
                   help="share of characters held out for test (default: %(default)s)")
    p.add_argument("--characters", default=None, help="render exactly these characters instead of a sample")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the character sample and split (default: %(default)s)")
    p.add_argument("--shared-train", action="store_true",
                   help="put every training character in both trainA and trainB (default: the training "
                   "characters are halved, so trainA and trainB hold different characters)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing glyph data set")
    p.set_defaults(func=run_glyphs)
    return p


def run_glyphs(args: argparse.Namespace) -> int:
    font_a = find_font(args.font_a, args.face_a)
    font_b = find_font(args.font_b, args.face_b)
    print(f"A: {font_a.family} ({font_a.path}, face {font_a.index})")
    print(f"B: {font_b.family} ({font_b.path}, face {font_b.index})")
    manifest = build_glyph_dataset(
        args.out, font_a, font_b, size=args.size, num_chars=args.num_chars or None,
        test_ratio=args.test_ratio, seed=args.seed, characters=args.characters, overwrite=args.overwrite,
        shared_train=args.shared_train,
    )
    print(f"wrote {manifest['num_train']} train characters ({manifest['num_train_a']} in trainA, "
          f"{manifest['num_train_b']} in trainB, {manifest['train_split']}) and {manifest['num_test']} test "
          f"characters ({args.size}x{args.size} grayscale) to {args.out}")
    return 0
