"""`vqi2i demo`: the whole pipeline on an embedded default, no data or weights to fetch.

Generates the synthetic summer/winter scenes, trains the tiny translator for a few minutes on the
CPU, translates the held-out scenes both ways with several random styles and with reference styles,
and writes one contact sheet to open.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vqi2i.errors import UserError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on synthetic data (CPU, a few minutes)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for data, run and results")
    p.add_argument("--steps", type=int, default=600, help="training steps (2-3 minutes on 2 CPU cores)")
    p.add_argument("--size", type=int, default=32, help="image size of the synthetic scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch (1 is faster on a busy 2-core machine)")
    p.add_argument("--overwrite", action="store_true", help="start again in an existing --out folder")
    p.set_defaults(func=run)


def _enlarge(t: torch.Tensor, factor: int = 3) -> torch.Tensor:
    """Nearest-neighbour enlargement so that 32-px results are easy to look at."""
    return t.repeat_interleave(factor, dim=-1).repeat_interleave(factor, dim=-2)


def run(args: argparse.Namespace) -> int:
    from vqi2i.apps.translate import translate_images
    from vqi2i.checkpoint import load_model
    from vqi2i.config import load_config
    from vqi2i.data.scenes import make_scenes
    from vqi2i.images import list_images, load_image, save_grid
    from vqi2i.train.runtime import set_threads
    from vqi2i.train.trainer import prepare_run, train

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
