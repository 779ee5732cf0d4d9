"""A benchmark's sample sheet, several runs side by side on the same held-out items and random styles.

    python scripts/sample_sheet.py --data out/bench_emoji/data --runs recipe=out/bench_emoji/recipe \\
        --every 25 --styles 4 -o docs/emoji64_recipe_picks.png

One block per run and direction (A -> B, then B -> A): each line is an input, its translations with
--styles random styles (seed --seed, the same for every run) and the ground truth (the test item of the
same name in the other domain). Items are every --every-th test item in name order, so sheets of
different runs show the same emoji or characters.

With --exemplars K the styles are not random: each block starts with K exemplars (test images of the
target domain, spread over the test set) and each line renders the input in the style of each of them:
a good translator follows every exemplar's look and keeps every input's content.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqi2i.checkpoint import load_model  # noqa: E402
from vqi2i.errors import UserError  # noqa: E402
from vqi2i.images import list_images, load_image, make_grid, save_pil  # noqa: E402

OTHER = {"a": "b", "b": "a"}


def parse_runs(spec: str) -> list[tuple[str, str]]:
    runs = []
    for item in spec.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--runs takes NAME=RUN,NAME=RUN, got {item!r}")
        runs.append((name.strip(), path.strip()))
    return runs


@torch.no_grad()
def sheet_rows(model, data: Path, src: str, every: int, styles: int, seed: int) -> list[list[torch.Tensor]]:
    dst = OTHER[src]
    files = list_images(data / f"test{src.upper()}")[::every]
    if not files:
        raise UserError(f"no test images in {data / f'test{src.upper()}'}")
    missing = [f.name for f in files if not (data / f"test{dst.upper()}" / f.name).is_file()]
    if missing:
        truth_dir = data / f"test{dst.upper()}"
        raise UserError(f"no ground truth {truth_dir / missing[0]} for test{src.upper()}/{missing[0]}")
    x = torch.stack([load_image(f, model.in_channels) for f in files])
    truth = [load_image(data / f"test{dst.upper()}" / f.name, model.in_channels) for f in files]
    _, z_q = model.encode_content(x)
    g = torch.Generator().manual_seed(seed)
    outs = []
    for _ in range(styles if model.multimodal else 1):
        style = model.sample_style(len(files), g, "cpu") if model.multimodal else None
        outs.append(model.decode(z_q, style, dst))
    return [[x[i], *(o[i] for o in outs), truth[i]] for i in range(len(files))]


@torch.no_grad()
def exemplar_rows(model, data: Path, src: str, every: int, exemplars: int) -> list[list[torch.Tensor]]:
    """A header of `exemplars` target-domain test images, then per input its translations in their styles."""
    dst = OTHER[src]
    files = list_images(data / f"test{src.upper()}")[::every]
    pool = list_images(data / f"test{dst.upper()}")
    if not files or not pool:
        raise UserError(f"no test images in {data / f'test{src.upper()}'} or {data / f'test{dst.upper()}'}")
    if not model.multimodal:
        raise UserError("--exemplars needs a multimodal model (a unimodal one has one style per domain)")
    refs = torch.stack([load_image(f, model.in_channels) for f in pool[:: max(1, len(pool) // exemplars)][:exemplars]])
    x = torch.stack([load_image(f, model.in_channels) for f in files])
    _, z_q = model.encode_content(x)
    styles = model.encode_style(refs, dst)
    outs = [model.decode(z_q, s[None], dst) for s in styles]
    blank = torch.ones_like(x[0])
    return [[blank, *refs]] + [[x[i], *(o[i] for o in outs)] for i in range(len(files))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the benchmark's data folder (testA, testB)")
    p.add_argument("--runs", required=True, help="NAME=RUN,NAME=RUN: run folders or checkpoints")
    p.add_argument("--every", type=int, default=25, help="every k-th test item (default: %(default)s)")
    p.add_argument("--styles", type=int, default=4, help="random styles per input (default: %(default)s)")
    p.add_argument("--exemplars", type=int, metavar="K",
                   help="K exemplars of the target domain instead of random styles (header row: the exemplars)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", required=True, help="the sheet (PNG)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.every < 1 or args.styles < 1 or (args.exemplars is not None and args.exemplars < 1):
        print("sample_sheet: --every, --styles and --exemplars must be at least 1", file=sys.stderr)
        return 2
    try:
        rows, labels = [], []
        for name, run in parse_runs(args.runs):
            model, _ = load_model(run)
            for src in ("a", "b"):
                if args.exemplars:
                    block = exemplar_rows(model, Path(args.data), src, args.every, args.exemplars)
                    head = [f"{name} {src.upper()}->{OTHER[src].upper()}\nexemplars"]
                else:
                    block = sheet_rows(model, Path(args.data), src, args.every, args.styles, args.seed)
                    head = [f"{name} {src.upper()}->{OTHER[src].upper()}"]
                rows += block
                labels += head + [""] * (len(block) - 1)
        save_pil(make_grid(rows, labels=labels), args.out, overwrite=args.overwrite)
    except UserError as e:
        print(f"sample_sheet: {e}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
