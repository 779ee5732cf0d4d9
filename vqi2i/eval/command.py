"""`vqi2i eval --checkpoint RUN --data DIR [--out report.json]` and `vqi2i train-classifier --data DIR`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vqi2i.errors import UserError
from vqi2i.eval.report import markdown_table
from vqi2i.fileio import atomic_write_text

DEFAULT_CLASSIFIER_STEPS = 800  # vqi2i.eval.classifier.DEFAULT_STEPS, without importing torch to build the parser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a translator on a test set (ground truth, style accuracy, FD/KID, diversity, codebook)",
        description="Translate DIR/testA -> B and DIR/testB -> A and score the translations. Files named alike "
        "in testA and testB (e.g. `vqi2i data glyphs`) are ground truth for L1/PSNR/SSIM. Writes a JSON report, "
        "prints a markdown table and saves a sample sheet (input | samples | ground truth).",
    )
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="run folder or checkpoint folder")
    p.add_argument("--data", required=True, type=Path, metavar="DIR", help="data in the CycleGAN layout")
    p.add_argument("--out", type=Path, help="JSON report (default: CHECKPOINT/eval-<data name>.json)")
    p.add_argument("--sheet", type=Path, help="sample sheet PNG (default: beside the report, -samples.png)")
    p.add_argument("--num-samples", type=int, default=4, help="random styles per input (default: %(default)s)")
    p.add_argument("--diversity-inputs", type=int, default=32,
                   help="inputs per direction used for diversity (default: %(default)s)")
    p.add_argument("--max-images", type=int, help="use at most this many images per test folder")
    p.add_argument("--sheet-rows", type=int, default=4, help="inputs per direction on the sheet (default: %(default)s)")
    p.add_argument("--inception-weights", type=Path, metavar="PATH",
                   help="local torchvision inception_v3 state dict (.safetensors/.pt) for Inception FD/KID")
    p.add_argument("--classifier-steps", type=int, default=DEFAULT_CLASSIFIER_STEPS,
                   help="training steps of the domain classifier when none is cached (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the random styles (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report and sheet")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)

    c = sub.add_parser(
        "train-classifier",
        help="train the domain classifier `vqi2i eval` uses, cached beside the data",
        description="Train a small CNN to tell DIR/trainA from DIR/trainB and save it as "
        "DIR/domain_classifier.safetensors (+ .json); `vqi2i eval` uses it while the data are unchanged.",
    )
    c.add_argument("--data", required=True, type=Path, metavar="DIR")
    c.add_argument("--channels", type=int, choices=(1, 3),
                   help="1 = gray, 3 = RGB (default: as the first image of trainA)")
    c.add_argument("--steps", type=int, default=DEFAULT_CLASSIFIER_STEPS, help="training steps (default: %(default)s)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    c.add_argument("--overwrite", action="store_true", help="replace an existing cached classifier")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_train_classifier)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be at least 1, got {value}")


def run_eval(args: argparse.Namespace) -> int:
    from vqi2i.checkpoint import load_model  # start-up: the CLI imports this module; torch loads only here
    from vqi2i.device import select_device
    from vqi2i.eval.evaluate import EvalOptions, evaluate
    from vqi2i.images import save_grid

    for name in ("num_samples", "diversity_inputs", "max_images", "sheet_rows", "batch_size", "classifier_steps"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    if args.num_samples < 2:
        raise UserError(f"--num-samples must be at least 2 (diversity compares samples), got {args.num_samples}")
    if not args.data.is_dir():
        raise UserError(f"data folder {args.data} does not exist")
    if args.inception_weights is not None and not args.inception_weights.is_file():
        raise UserError(f"Inception weights file {args.inception_weights} not found "
                        "(vqi2i never downloads weights; give a local inception_v3 state dict)")
    device = select_device(args.device)
    model, cfg = load_model(args.checkpoint, device)
    out = args.out or Path(model.checkpoint_dir) / f"eval-{args.data.resolve().name}.json"
    sheet = args.sheet or out.with_name(out.stem + "-samples.png")
    for path in (out, sheet):
        if path.exists() and not args.overwrite:
            raise UserError(f"{path} already exists (pass --overwrite to replace it)")

    opt = EvalOptions(
        num_samples=args.num_samples, diversity_inputs=args.diversity_inputs, max_images=args.max_images,
        batch_size=args.batch_size, seed=args.seed, sheet_rows=args.sheet_rows,
        inception_weights=str(args.inception_weights) if args.inception_weights else None,
        classifier_steps=args.classifier_steps, progress=not args.no_progress,
    )
    report, (rows, labels) = evaluate(model, cfg, args.data, opt, device)
    report["sheet"] = str(sheet)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n", overwrite=True)
    save_grid(rows, sheet, labels=labels, overwrite=True)
    print(markdown_table(report))
    for line in report["skipped"]:
        print(f"skipped: {line}")
    gt = " | ground truth" if report["ground_truth_pairs"] else ""
    print(f"report: {out}\nsample sheet: {sheet} (rows: input | {args.num_samples} samples, random styles{gt})")
    return 0


def run_train_classifier(args: argparse.Namespace) -> int:
    from PIL import Image  # start-up: the CLI imports this module; PIL and torch load only here

    from vqi2i.device import select_device
    from vqi2i.eval import classifier as clf
    from vqi2i.eval.evaluate import classifier_settings
    from vqi2i.images import list_images

    _positive("--steps", args.steps)
    if not args.data.is_dir():
        raise UserError(f"data folder {args.data} does not exist")
    channels = args.channels
    if channels is None:
        first = list_images(args.data / "trainA")[0]
        with Image.open(first) as im:
            channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
    settings = classifier_settings(args.data, channels, args.steps, args.seed)
    weights, _ = clf.cache_paths(args.data)
    if weights.exists() and not args.overwrite:
        raise UserError(f"{weights} already exists (pass --overwrite to replace it)")
    model, scores = clf.fit_for_data(args.data, settings, select_device(args.device), not args.no_progress)
    clf.save_cached(args.data, model, settings, scores, overwrite=True)
    test = f", test {scores['test_accuracy']:.3f}" if "test_accuracy" in scores else ""
    print(f"domain classifier: accuracy train {scores['train_accuracy']:.3f}{test}; saved to {weights}")
    return 0
