"""Translate and training throughput, each against a naive baseline measured in the same run.

Translate (the scenes64 architecture, freshly built; speed does not depend on the weights):
  ours    `vqi2i.apps.translate.translate_images` at batch 1 and batch 16, at 64 and 256 px
  naive   a Python loop over images, `encode_content` then `decode` called separately for each one
Training (`vqi2i.train.trainer.train` on synthetic scenes written to a temp folder):
  the tiny and scenes64 configs at their own batch size, against batch 1 (the released code's setting)

Every case runs in a fresh subprocess, so its memory figure is its own. Memory on the CPU is the rise
of the process's peak resident set (Linux VmHWM, reset through /proc/self/clear_refs) during the timed
part over the resident set just before it: activations, outputs and allocator growth, not the model or
the inputs, which are loaded before. On CUDA it is the rise of max_memory_allocated.

    python scripts/bench_translate.py                   # CPU, one torch thread (steady on a shared box)
    python scripts/bench_translate.py --threads 0       # torch's default thread count
    python scripts/bench_translate.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from peak_memory import PeakMemory

from vqi2i.apps.translate import translate_images
from vqi2i.config import load_config
from vqi2i.data.scenes import make_scenes
from vqi2i.models.build import build_model
from vqi2i.train.runtime import read_metrics
from vqi2i.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TRANSLATE_CONFIG = ROOT / "configs" / "scenes64.yaml"
# (size, mode, batch, images, passes): the best of `passes` timed passes counts (the box is shared, and
# other load only ever adds time); fewer images at 256 px, where one image costs about a second on a core
TRANSLATE_CASES = [
    (64, "ours", 1, 32, 3), (64, "ours", 16, 32, 3), (64, "naive", 1, 32, 3),
    (256, "ours", 1, 4, 1), (256, "ours", 16, 16, 1), (256, "naive", 1, 4, 1),
]  # fmt: skip
# (config, batch or None for the config's own, timed steps); one untimed warm-up step comes first
TRAIN_CASES = [("tiny", None, 6), ("tiny", 1, 6), ("scenes64", None, 3), ("scenes64", 1, 3)]


# ------------------------------------------------------------------------ measuring one case


def run_translate_case(size: int, mode: str, batch: int, n: int, passes: int, device) -> dict:
    torch.manual_seed(0)
    model = build_model(load_config(TRANSLATE_CONFIG, ["train.device=cpu"])).to(device).eval()
    g = torch.Generator().manual_seed(0)
    images = list(torch.rand(n, 3, size, size, generator=g) * 2 - 1)
    styles = model.sample_style(n, torch.Generator().manual_seed(1), "cpu")

    def ours(imgs):
        return translate_images(
            model, imgs, "a", "b", style=None, num_samples=1, generator=torch.Generator().manual_seed(1),
            batch_size=batch, fit="pad", device=device,
        )  # fmt: skip

    @torch.no_grad()
    def naive(imgs):
        outs = []
        for i, im in enumerate(imgs):
            _, z_q = model.encode_content(im[None].to(device))
            outs.append(model.decode(z_q, styles[i : i + 1].to(device), "b").cpu())
        return outs

    fn = ours if mode == "ours" else naive
    fn(images[:1])  # warm-up: first-call kernel set-up is not throughput
    times, peaks = [], []
    for _ in range(passes):
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            outputs = fn(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peaks.append(mem.mb)
    seconds = min(times)
    # memory from the first pass: later passes reuse what the first one left resident
    result = {"size": size, "mode": mode, "batch": batch, "images": n, "seconds": round(seconds, 3),
              "passes_s": [round(t, 3) for t in times], "images_per_s": round(n / seconds, 2),
              "peak_mem_rise_mb": round(peaks[0], 1)}  # fmt: skip
    if mode == "ours":  # batched results equal the one-at-a-time ones (same styles: drawn the same way)
        k = min(2, n)
        ref = naive(images[:k])
        result["max_abs_diff_vs_naive"] = float(max((a[0] - b[0]).abs().max() for a, b in zip(outputs[:k], ref)))
    return result


def run_train_case(config: str, batch: int | None, steps: int, device) -> dict:
    cfg = load_config(ROOT / "configs" / f"{config}.yaml")
    batch = int(cfg.train.batch_size) if batch is None else batch
    size = int(cfg.data.size)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_scenes(Path(tmp) / "scenes", n_train=max(16, 2 * batch), n_test=2, size=size, progress=False)
        total = steps + 1
        cfg = load_config(ROOT / "configs" / f"{config}.yaml", [
            f"data.root={data}", f"train.batch_size={batch}", f"train.max_steps={total}", "train.log_every=1",
            f"train.image_every={total}", f"train.ckpt_every={total}", f"train.device={device.type}",
        ])  # fmt: skip
        with PeakMemory(device) as mem:
            train(cfg, Path(tmp) / "run", progress=False)
        log = read_metrics(Path(tmp) / "run")
    seconds = [1.0 / r["steps_per_s"] for r in log[1:]]  # each line times one step; the first warms up
    steps_per_s = 1.0 / statistics.median(seconds)  # the median step: robust to other load on a shared box
    return {"config": config, "size": size, "batch": batch, "timed_steps": len(seconds),
            "steps_per_s": round(steps_per_s, 3), "images_per_s": round(steps_per_s * 2 * batch, 2),
            "step_s": [round(t, 3) for t in seconds], "peak_mem_rise_mb": round(mem.mb, 1),
            "device": str(torch.device(device))}  # fmt: skip


def run_case(spec: dict) -> dict:
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if spec["kind"] == "translate":
        return run_translate_case(spec["size"], spec["mode"], spec["batch"], spec["images"], spec["passes"], device)
    return run_train_case(spec["config"], spec["batch"], spec["steps"], device)


# ------------------------------------------------------------------------ the driver


def in_subprocess(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--case", json.dumps(spec)], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"case {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads; 0: torch's default. On a shared 2-core box the default pool was 3x faster "
        "when the box was quiet and up to 60x slower per training step when other jobs ran: 1 keeps the run "
        "steady and short. Ours and the baselines always use the same setting",
    )  # fmt: skip
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return

    common = {"device": args.device, "threads": args.threads}
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    translate = []
    for size, mode, batch, n, passes in TRANSLATE_CASES:
        spec = {"kind": "translate", "size": size, "mode": mode, "batch": batch, "images": n, "passes": passes,
                **common}  # fmt: skip
        translate.append(in_subprocess(spec))
        print(json.dumps(translate[-1]), file=sys.stderr)
    speedup = {}
    for size in sorted({c["size"] for c in translate}):
        naive = next(c for c in translate if c["size"] == size and c["mode"] == "naive")
        for c in translate:
            if c["size"] == size and c["mode"] == "ours":
                speedup[f"{size}px_batch{c['batch']}"] = round(c["images_per_s"] / naive["images_per_s"], 2)
    training, train_ratio = [], {}
    if not args.skip_train:
        for config, batch, steps in TRAIN_CASES:
            training.append(
                in_subprocess({"kind": "train", "config": config, "batch": batch, "steps": steps, **common})
            )
            print(json.dumps(training[-1]), file=sys.stderr)
        for config in dict.fromkeys(c["config"] for c in training):
            own, one = [c for c in training if c["config"] == config]
            train_ratio[f"{config}_batch{own['batch']}_vs_batch1_images_per_s"] = round(
                own["images_per_s"] / one["images_per_s"], 2
            )
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_avg_1m_at_start": round(load_at_start, 2),
                    "torch": torch.__version__, "threads": args.threads or torch.get_num_threads(),
                    "device": args.device},
        "translate": translate,
        "translate_speedup_vs_naive": speedup,
        "train": training,
        "train_speedup_vs_batch1": train_ratio,
        "memory": "peak_mem_rise_mb: CPU = rise of the peak resident set (VmHWM) during the timed part over "
                  "the resident set just before it; CUDA = rise of max_memory_allocated",
        "wall_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
