"""`vqi2i demo`: what vqi2i does, in seconds, on the built-in trained models (no data or weights to fetch).

The instant demo runs the real commands (translate with random and exemplar styles, intra-domain,
interpolate, generate, extend, complete) on the built-in scenes, glyph and emoji models and their
example images, and writes each result as PNGs plus one `index.html` gallery whose captions are the
commands that made each picture.

`vqi2i demo --train` runs the whole pipeline from scratch instead: generates the synthetic
summer/winter scenes, trains the tiny translator for a few minutes on the CPU, translates the
held-out scenes both ways with several random styles and with reference styles, and writes one
contact sheet.
"""

from __future__ import annotations

import argparse
import html
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from vqi2i.apps.translate import translate_images
from vqi2i.builtin import available, get
from vqi2i.checkpoint import load_model
from vqi2i.cli import main
from vqi2i.config import load_config
from vqi2i.data.scenes import make_scenes
from vqi2i.device import set_threads
from vqi2i.errors import UserError
from vqi2i.fileio import atomic_write_text
from vqi2i.images import list_images, load_image, save_grid
from vqi2i.train.run import prepare_run

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@dataclass
class Shot:
    """One picture of the gallery: the command that makes it and the image it writes."""

    title: str
    about: str
    argv: list[str]
    picture: str  # relative to the command's --out folder


def shots(out: Path) -> list[Shot]:
    """The gallery, as the commands a user would type (inputs copied next to the results)."""
    ex = out / "inputs"
    s_a, s_b = ex / "scenes" / "a", ex / "scenes" / "b"
    one_a = sorted(s_a.glob("*.png"))[0]
    first_b, one_b = most_different_styles("scenes", "b", sorted(s_b.glob("*.png")))
    o = lambda name: str(out / name)  # noqa: E731
    shots = [
        Shot("Summer → winter, random styles", "Each held-out scene (left) translated with four random styles: "
             "the content tokens keep the layout, the style decides the palette.",
             ["translate", "-c", "scenes", "-i", str(s_a), "-d", "a2b", "-n", "4", "--grid", "-o", o("01")],
             "grid.png"),
        Shot("Winter → summer, random styles", "The other direction, with the same content tokens.",
             ["translate", "-c", "scenes", "-i", str(s_b), "-d", "b2a", "-n", "4", "--grid", "-o", o("02")],
             "grid.png"),
        Shot("Guided by an example", f"Summer scenes rendered in the style of one winter image ({one_b.name}).",
             ["translate", "-c", "scenes", "-i", str(s_a), "-d", "a2b", "--style", str(one_b), "--grid",
              "-o", o("03")], "grid.png"),
        Shot("Guided by another example", f"The same scenes in the style of another winter image ({first_b.name}): "
             "the tokens keep each scene, the example decides its look.",
             ["translate", "-c", "scenes", "-i", str(s_a), "-d", "a2b", "--style", str(first_b), "--grid",
              "-o", o("03b")], "grid.png"),
        Shot("Intra-domain", "Summer scenes re-rendered as summer with new random styles.",
             ["translate", "-c", "scenes", "-i", str(s_a), "-d", "a2b", "--intra", "-n", "4", "--grid",
              "-o", o("04")], "grid.png"),
        Shot("Transitional stylization", "One summer scene rendered as winter in styles going from one winter "
             f"example ({first_b.name}) to another ({one_b.name}): in five steps (top) and smoothly across the "
             "frame (bottom).",
             ["interpolate", "-c", "scenes", "-i", str(one_a), "-d", "a2b", "--styles", f"{first_b},{one_b}",
              "--mode", "smooth", "-n", "5", "-o", o("05")], f"{one_a.stem}_a2b_smooth_strip.png"),
        Shot("Unconditional generation", "New scenes sampled from the content prior, drawn as summer (A) and "
             "winter (B).", ["generate", "-p", "scenes-prior", "-n", "4", "--domain", "both", "-o", o("06")],
             "grid.png"),
        Shot("Extension (outpainting)", "The scene continued 16 pixels beyond both borders, three ways.",
             ["extend", "-p", "scenes-prior", "-i", str(one_a), "--from", "a", "--side", "both", "--pixels", "16",
              "-n", "3", "-o", o("07")], "grid.png"),
        Shot("Completion", "Only the top-left quarter is kept (greyed view second); the prior fills in the rest.",
             ["complete", "-p", "scenes-prior", "-i", str(one_a), "--from", "a", "--keep", "quarter", "-n", "3",
              "-o", o("08")], "grid.png"),
    ]
    for k, (model, what, d) in enumerate([("glyphs", "Ming → Kai", "a2b"), ("glyphs", "Kai → Ming", "b2a"),
                                          ("emoji", "Noto → Twemoji", "a2b"), ("emoji", "Twemoji → Noto", "b2a")]):
        src = ex / model / d[0]
        shots.append(Shot(f"{model.capitalize()}: {what}", "Held-out items (left), four random styles, "
                          "trained without pairs.",
                          ["translate", "-c", model, "-i", str(src), "-d", d, "-n", "4", "--grid",
                           "-o", o(f"{9 + k:02d}")],
                          "grid.png"))
    return shots


def most_different_styles(model_name: str, domain: str, files: list[Path]) -> tuple[Path, Path]:
    """The two images (of `domain`) whose encoded styles lie farthest apart under the built-in model: the guided
    and transition shots then show the widest change of look the model gives (on the shipped winter examples
    about twice the pixel change of the first and last file)."""
    if len(files) < 2:
        raise UserError(f"the demo needs two example images of domain {domain} of {model_name}, found {len(files)}")
    model, _ = load_model(get(model_name).path)
    with torch.no_grad():
        styles = model.encode_style(torch.stack([load_image(f, model.in_channels) for f in files]), domain)
    i, j = divmod(int(torch.cdist(styles.flatten(1), styles.flatten(1)).argmax()), len(files))
    return files[min(i, j)], files[max(i, j)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="show what vqi2i does on the built-in models in seconds (--train: from scratch)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the results (default: %(default)s)")
    p.add_argument("--train", action="store_true",
                   help="instead: make synthetic data, train the tiny translator on the CPU (a few minutes), translate")
    p.add_argument("--steps", type=int, default=600, help="--train: training steps (2-3 minutes on 2 CPU cores)")
    p.add_argument("--size", type=int, default=32, help="--train: image size of the synthetic scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is faster on a busy 2-core machine)")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_trained(args) if args.train else run_instant(args)


def _page(items: list[tuple[Shot, str, int, str]], seconds: float) -> str:
    """The gallery: per shot a title, what it shows, the picture (3x, pixelated) and its command."""
    cards = []
    for shot, picture, width, command in items:
        cards.append(
            f"<section><h2>{html.escape(shot.title)}</h2><p>{html.escape(shot.about)}</p>"
            f'<img src="{html.escape(picture)}" alt="{html.escape(shot.title)}" width="{3 * width}">'
            f"<pre>{html.escape(command)}</pre></section>"
        )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>vqi2i demo</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "img{image-rendering:pixelated;max-width:100%;height:auto}"
        "pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}section{margin-bottom:2.5em}</style>"
        "<h1>vqi2i demo</h1><p>Every picture below was made by the command under it, on the built-in models "
        f"(<code>vqi2i models</code> lists them with their scores), in {seconds:.0f} s. Images are shown 3x enlarged."
        "</p>" + "".join(cards) + "</html>\n"
    )


def run_instant(args: argparse.Namespace) -> int:
    missing = [n for n in ("scenes", "scenes-prior", "glyphs", "emoji") if n not in available()]
    if missing:
        raise UserError(f"built-in model(s) {', '.join(missing)} are not installed; `vqi2i demo --train` trains one")
    index = args.out / "index.html"
    if index.exists() and not args.overwrite:
        raise UserError(f"{index} already exists; pass --overwrite to run the demo again")
    set_threads(args.threads)
    t0 = time.perf_counter()
    for model in ("scenes", "glyphs", "emoji"):
        for d in ("a", "b"):
            dst = args.out / "inputs" / model / d
            dst.mkdir(parents=True, exist_ok=True)
            for f in get(model).examples(d):
                shutil.copyfile(f, dst / f.name)
    items = []
    plan = shots(args.out)
    for k, shot in enumerate(plan, 1):
        argv = [*shot.argv, "--seed", str(args.seed), "--device", args.device, "--overwrite"]
        print(f"[{k}/{len(plan)}] {shot.title}: vqi2i {shlex.join(shot.argv)}", flush=True)
        if main(argv) != 0:
            raise UserError(f"the demo's command failed: vqi2i {shlex.join(argv)}")
        out_dir = Path(shot.argv[shot.argv.index("-o") + 1])
        picture = out_dir / shot.picture
        with Image.open(picture) as im:
            width = im.width
        rel = picture.relative_to(args.out).as_posix()
        items.append((shot, rel, width, "vqi2i " + shlex.join([*shot.argv, "--seed", str(args.seed)])))
    seconds = time.perf_counter() - t0
    atomic_write_text(index, _page(items, seconds))
    print(f"done in {seconds:.0f}s. Open {index} in a browser: {len(items)} pictures, each with the command "
          "that made it.")
    return 0

def _enlarge(t: torch.Tensor, factor: int = 3) -> torch.Tensor:
    """Nearest-neighbour enlargement so that 32-px results are easy to look at."""
    return t.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)


def run_trained(args: argparse.Namespace) -> int:
    """`vqi2i demo --train`: synthetic scenes -> tiny translator trained here -> one contact sheet."""
    from vqi2i.train.trainer import train  # start-up: the trainer (taming, the losses) loads only for --train

    if not CONFIG.is_file():
        raise UserError(f"the demo needs {CONFIG} (run it from a source checkout: pip install -e .)")
    if args.steps < 1:
        raise UserError("--steps must be >= 1")
    set_threads(args.threads)
    sheet = args.out / "demo.png"
    if sheet.exists() and not args.overwrite:
        raise UserError(f"{sheet} already exists; pass --overwrite to run the demo again")
    t0 = time.perf_counter()
    data = args.out / "scenes"
    if not (data / "scenes.json").is_file() or args.overwrite:
        print(f"[1/3] synthetic summer (A) / winter (B) scenes -> {data}")
        make_scenes(data, n_train=200, n_test=6, size=args.size, seed=args.seed, overwrite=True)
    run_dir = args.out / "run"
    cfg = load_config(
        CONFIG,
        [
            f"data.root={data}", f"data.size={args.size}", f"data.crop={args.size}", f"model.resolution={args.size}",
            f"train.max_steps={args.steps}", f"train.seed={args.seed}", f"train.device={args.device}",
            "train.log_every=25", f"train.image_every={max(1, args.steps // 4)}",
            f"train.ckpt_every={max(1, args.steps // 4)}", "model.codebook.restart_every=50",
            # adversarial terms from half-way: on this short schedule that gives visibly cleaner outputs
            f"train.disc_start={args.steps // 2}",
        ],
    )  # fmt: skip
    print(f"[2/3] training the tiny translator for {args.steps} steps -> {run_dir}")
    prepare_run(run_dir, resume=False, overwrite=True)
    last = train(cfg, run_dir)
    print(f"      recon L1 {last['recon']:.3f}, {last['codes_used']} of {cfg.model.n_embed} codes in use")

    print("[3/3] translating the held-out scenes")
    model, _ = load_model(run_dir, "cpu")
    g = torch.Generator().manual_seed(args.seed)
    rows, labels = [], []
    for src, dst in (("a", "b"), ("b", "a")):
        images = [load_image(p, model.in_channels) for p in list_images(data / f"test{src.upper()}")]
        outs = translate_images(
            model, images, src, dst, style=None, num_samples=4, generator=g, batch_size=8, fit="pad", device="cpu"
        )
        # exemplar-guided: each input rendered in the style of a (different) real image of the target domain
        refs = torch.stack([load_image(p, model.in_channels) for p in list_images(data / f"test{dst.upper()}")])
        refs = refs.flip(0)[: len(images)]
        with torch.no_grad():
            tokens, _ = model.encode_content(torch.stack(images))
            guided = model.decode(tokens, model.encode_style(refs, dst), dst)
        for im, ys, ref, y in zip(images, outs, refs, guided):
            rows.append([_enlarge(t) for t in (im, *ys, ref, y)])
            labels.append(f"{src.upper()}->{dst.upper()}")
    save_grid(rows, sheet, overwrite=True, labels=labels)
    print(
        f"done in {time.perf_counter() - t0:.0f}s. Open {sheet}: each row is an input, four translations with "
        "random styles, then a reference image of the target domain and the input translated in its style."
    )
    return 0
