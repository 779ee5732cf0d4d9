"""`vqi2i info CHECKPOINT`: what a checkpoint is (config, step, parameters) and how much of its codebook it uses.

Codebook usage is measured by encoding images when `--data DIR` is given; otherwise it is read from
the last line of the run's metrics.jsonl (counted over the training batches of that log interval).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from vqi2i.apps.common import fit_to_factor
from vqi2i.apps.encode import encode_images
from vqi2i.checkpoint import checkpoint_id, inference_weights, load_model, load_weights
from vqi2i.device import select_device
from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image
from vqi2i.models.style_encoder import style_spread
from vqi2i.train.runtime import read_metrics

PART_NAMES = {  # top-level modules of VQI2I -> the part of the method they are
    "content_encoder": "content encoder",
    "quant_conv": "content encoder",
    "quantizer": "quantizer (codebook)",
    "style_encoders": "style encoders",
    "domain_styles": "domain styles (unimodal)",
    "decoders": "decoders",
}
CYCLEGAN_FOLDERS = ("trainA", "trainB", "testA", "testB")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a checkpoint: config, step, parameters, codebook usage",
        description="Describe a checkpoint (a run folder or a checkpoint folder). With --data DIR (a CycleGAN "
        "layout or a folder of images) the images are encoded to measure codebook usage; without it the usage "
        "logged during training is shown.",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="training run folder or checkpoint folder")
    p.add_argument("--data", type=Path, metavar="DIR", help="encode these images to measure codebook usage")
    p.add_argument("--max-images", type=int, help="encode at most this many images per folder")
    p.add_argument("--fit", default="pad", choices=("pad", "crop", "resize"), help="how to reach a multiple of f")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per part of the translator (in PART_NAMES order), with the total."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        part = PART_NAMES.get(name, name)
        counts[part] = counts.get(part, 0) + sum(p.numel() for p in child.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def discriminator_info(cfg, ckpt: Path) -> dict[str, Any] | None:
    """Parameter count of the discriminators saved beside the model, or None when there are none."""
    from vqi2i.models.build import build_discriminators  # start-up: taming loads only when this runs

    file = ckpt / "disc.safetensors"
    if not file.is_file():
        return None
    discs = build_discriminators(cfg)
    info: dict[str, Any] = {"parameters": sum(p.numel() for p in discs.parameters())}
    try:
        load_weights(discs, file)
    except UserError as e:  # the translator still works; say what is wrong with the training-only part
        info["error"] = str(e)
    return info


def training_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def logged_usage(ckpt: Path) -> dict[str, Any] | None:
    """Codebook figures from the last metrics.jsonl line that has them (the run folder holds the log)."""
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    try:
        records = read_metrics(run_dir)
    except (OSError, json.JSONDecodeError):
        return None
    for record in reversed(records):
        if "codes_used" in record:
            keys = ("step", "codes_used", "perplexity", "val_codes_used", "style_spread_a", "style_spread_b", "style",
                    "val_style_spread_a", "val_style_spread_b", "val_style_dead_a", "val_style_dead_b")
            return {k: record[k] for k in keys if k in record} | {"source": str(run_dir / "metrics.jsonl")}
    return None


def data_folders(root: Path) -> list[Path]:
    """The split folders of a CycleGAN layout, or the folder itself."""
    if not root.exists():
        raise UserError(f"--data {root} does not exist")
    if not root.is_dir():
        raise UserError(f"--data {root} is not a folder (give a CycleGAN layout or a folder of images)")
    splits = [root / name for name in CYCLEGAN_FOLDERS if (root / name).is_dir()]
    return splits or [root]


@torch.no_grad()
def measured_usage(model, root: Path, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Encode every image under `root` and count the codes: per folder and over all of them."""
    from vqi2i.eval.metrics import codebook_usage  # start-up: torchmetrics takes seconds to import

    per_folder, all_tokens = {}, []
    for folder in data_folders(root):
        paths = list_images(folder)[: args.max_images]
        images = [load_image(p, model.in_channels) for p in paths]
        encoded = encode_images(model, images, fit=args.fit, batch_size=args.batch_size, device=device)
        tokens = torch.cat([t.flatten() for t, _ in encoded])
        all_tokens.append(tokens)
        per_folder[folder.name] = {"images": len(paths), **codebook_usage(tokens, model.n_embed)}
        domain = folder.name[-1].lower() if folder.name in CYCLEGAN_FOLDERS else None
        if model.multimodal and domain in ("a", "b") and len(images) >= 2:  # how far the folder's styles spread
            fitted = [fit_to_factor(im[None], model.factor, args.fit)[0][0] for im in images]
            if len({tuple(f.shape) for f in fitted}) == 1:
                styles = torch.cat([model.encode_style(torch.stack(fitted[i:i + args.batch_size]).to(device), domain)
                                    for i in range(0, len(fitted), args.batch_size)])
                per_folder[folder.name]["style_spread"] = style_spread(styles.cpu())
    overall = codebook_usage(torch.cat(all_tokens), model.n_embed)
    return {"source": str(root), "images": sum(f["images"] for f in per_folder.values()), **overall,
            "folders": per_folder if len(per_folder) > 1 else {}}  # fmt: skip


def describe(args: argparse.Namespace) -> dict[str, Any]:
    if args.max_images is not None and args.max_images < 1:
        raise UserError("--max-images must be >= 1")
    if args.batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    device = select_device(args.device)
    model, cfg = load_model(args.checkpoint, device)
    ckpt = model.checkpoint_dir
    m = cfg.model
    state = training_state(ckpt)
    info: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "checkpoint_id": checkpoint_id(ckpt),
        "weights": inference_weights(ckpt).name,  # model_ema.safetensors when the run kept a moving average
        "name": str(cfg.name),
        "variant": model.variant,
        "step": state.get("step"),
        "epoch": state.get("epoch"),
        "in_channels": model.in_channels,
        "n_embed": model.n_embed,
        "embed_dim": int(m.embed_dim),
        "factor": model.factor,
        "style_dim": model.style_dim if model.multimodal else None,
        "codebook_metric": str(m.codebook.metric),
        "train_crop": cfg.data.crop,
        "parameters": parameter_counts(model),
        "discriminators": discriminator_info(cfg, ckpt),
    }
    if args.data is not None:
        info["codebook_usage"] = {"measured": measured_usage(model, args.data, args, device)}
    else:
        logged = logged_usage(ckpt)
        info["codebook_usage"] = {"logged": logged} if logged else None
    return info


def format_text(info: dict[str, Any]) -> str:
    crop = info["train_crop"]
    grid = f"{crop // info['factor']}x{crop // info['factor']}" if isinstance(crop, int) else "?"
    step = "unknown (no state.json)" if info["step"] is None else str(info["step"])
    if info["epoch"] is not None:
        step += f" (epoch {info['epoch']})"
    lines = [
        f"checkpoint      {info['checkpoint']}  (id {info['checkpoint_id']})",
        f"weights         {info['weights']}"
        + ("  (moving average of the training weights)" if info["weights"].startswith("model_ema") else ""),
        f"name            {info['name']}",
        f"variant         {info['variant']}",
        f"training step   {step}",
        f"images          {info['in_channels']} channel(s), trained on {crop} px crops",
        f"content codes   K={info['n_embed']}, D={info['embed_dim']} ({info['codebook_metric']}), "
        f"factor f={info['factor']} ({crop} px -> {grid} tokens)",
        f"style dim       {'none (one fixed style per domain)' if info['style_dim'] is None else info['style_dim']}",
        "parameters",
    ]
    for part, n in info["parameters"].items():
        if part != "total":
            lines.append(f"  {part:<26}{n:>12,}")
    lines.append(f"  {'translator total':<26}{info['parameters']['total']:>12,}")
    disc = info["discriminators"]
    if disc is None:
        lines.append(f"  {'discriminators':<26}{'not in checkpoint':>12}")
    else:
        note = f"  UNREADABLE: {disc['error']}" if "error" in disc else "  (training only)"
        lines.append(f"  {'discriminators':<26}{disc['parameters']:>12,}{note}")
    usage = info["codebook_usage"]
    k = info["n_embed"]
    if usage is None:
        lines.append("codebook usage  unknown: no metrics.jsonl with codebook figures; measure it with --data DIR")
    elif "measured" in usage:
        u = usage["measured"]
        lines.append(
            f"codebook usage  measured on {u['images']} image(s) in {u['source']}: "
            f"{u['codes_used']} of {k} codes ({100 * u['usage']:.1f}%), perplexity {u['perplexity']:.1f}"
        )
        for name, f in u["folders"].items():
            spread = f", style spread {f['style_spread']:.3f}" if "style_spread" in f else ""
            lines.append(
                f"  {name:<14}{f['images']:>6} image(s): {f['codes_used']} codes, perplexity {f['perplexity']:.1f}"
                f"{spread}"
            )
    else:
        u = usage["logged"]
        val = f"; preview batch: {u['val_codes_used']} codes" if "val_codes_used" in u else ""
        lines.append(
            f"codebook usage  from the training log (not measured; {u['source']}, step {u['step']}, training "
            f"batches since the previous log line): {u['codes_used']} of {k} codes, perplexity "
            f"{u['perplexity']:.1f}{val}"
        )
        if "style_spread_a" in u:
            lines.append(f"style spread    from the training log: A {u['style_spread_a']:.3f}, B "
                         f"{u['style_spread_b']:.3f} (random styles: 1; near 0: every image gets one style), latent "
                         f"style regression {u.get('style', float('nan')):.3f}")
        if "val_style_spread_a" in u:
            lines.append(f"style spread    of the inference weights on the preview batch (training log): A "
                         f"{u['val_style_spread_a']:.3f}, B {u['val_style_spread_b']:.3f}")
        if "val_style_dead_a" in u:
            lines.append(f"style encoders  dead channels (largest share in a layer) on the preview batch: A "
                         f"{u['val_style_dead_a']:.2f}, B {u['val_style_dead_b']:.2f} (1: the encoder gives every "
                         "image one style and cannot recover)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    info = describe(args)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
