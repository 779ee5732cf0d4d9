"""Training steps per second of the translator with each speed option, against a baseline measured in the
same run, printed as JSON (docs/benchmarks.md, "Training speed").

    python scripts/bench_train_speed.py                       # configs/glyphs64.yaml on data/glyphs
    python scripts/bench_train_speed.py --config configs/tiny.yaml --data data/scenes --warmup 5 --steps 10

Each variant trains warmup + steps steps in this process (train() with train.log_every = warmup, so the
second logged interval times the measured steps alone; no previews, checkpoints or TensorBoard inside it).
The variants run in rounds (baseline, A, B, ..., then again), and a variant's figure is the median of its
rounds, so a load that changes during the run hits every variant alike. Ratios are against the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqi2i.config import load_config  # noqa: E402
from vqi2i.train.runtime import read_metrics  # noqa: E402
from vqi2i.train.trainer import train  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "channels_last": ["train.channels_last=true"],
    "fused_adam": ["train.fused_adam=true"],
    "workers2": ["data.num_workers=2"],
    "compile": ["train.compile=true"],
}


def measure(config: str, overrides: list[str], warmup: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, [*overrides, f"train.max_steps={warmup + steps}", f"train.log_every={warmup}",
                                   "train.image_every=1000000", "train.ckpt_every=1000000",
                                   "train.tensorboard=false"])
        train(cfg, Path(tmp) / "run", progress=False)
        records = read_metrics(Path(tmp) / "run")
    timed = [r for r in records if r["step"] > warmup]
    if not timed:
        raise SystemExit("no timed interval: give --steps >= 1")
    return float(timed[-1]["steps_per_s"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "glyphs64.yaml"))
    p.add_argument("--data", default=str(ROOT / "data" / "glyphs"), help="data.root")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=4, help="train.batch_size")
    p.add_argument("--warmup", type=int, default=5, help="steps before timing (compilation happens here)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("overrides", nargs="*", help="extra key=value config overrides")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if "baseline" not in names:
        names.insert(0, "baseline")
    base = [f"data.root={args.data}", f"train.device={args.device}", f"train.batch_size={args.batch}",
            *args.overrides]
    load_before = os.getloadavg()
    started = time.time()
    figures: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            figures[name].append(measure(args.config, [*base, *VARIANTS[name]], args.warmup, args.steps))
            print(f"{name}: {figures[name][-1]:.3f} steps/s", file=sys.stderr)
    medians = {n: statistics.median(v) for n, v in figures.items()}
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
                    "device": args.device},
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - started, 1),
        "command": " ".join(sys.argv),
        "config": args.config,
        "batch_size": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "rounds": args.rounds,
        "results": [
            {"variant": n, "steps_per_s": round(medians[n], 4), "images_per_s_per_domain": round(medians[n] *
             args.batch, 3), "ratio": round(medians[n] / medians["baseline"], 3),
             "rounds": [round(x, 4) for x in figures[n]]}
            for n in names
        ],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
