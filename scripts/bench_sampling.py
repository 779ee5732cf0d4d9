"""Sampling speed: our KV-cached sampler against full-recompute baselines, measured in the same run.

Cases (same depth, width and heads for every model; random weights, speed does not depend on them):
  generate 16x16      ours vs taming.modules.transformer.mingpt `sample()` (no cache, whole prefix per token)
  generate 32x32      ours (2-D sliding window of 16x16) vs mingpt `sample()` (its 1-D window of 256 tokens)
  extend 16x16 by 8   ours vs a full 16x16-window recompute per new token (how the released VQ-I2I samples)

Each (case, method) runs in a fresh child process (so memory one run freed cannot hide the next one's
peak), after a short warm-up. Prints JSON: tokens/s, seconds, peak memory (CUDA: max allocated; CPU: the
rise of the process's peak resident set over the run) and the speed-up of ours over the baseline.

    python scripts/bench_sampling.py                       # CPU, torch's default thread count
    python scripts/bench_sampling.py --threads 1 --batch 8 --cases gen16,extend --repeat 3
    python scripts/bench_sampling.py --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import torch
from peak_memory import PeakMemory
from taming.modules.transformer.mingpt import GPT as MinGPT
from taming.modules.transformer.mingpt import sample as mingpt_sample

from vqi2i.models.prior import ContentPrior, PriorConfig
from vqi2i.sampling import extend_right, generate_grids


def measure(fn, device: torch.device, new_tokens: int, repeat: int = 1) -> dict:
    """Seconds of the fastest of `repeat` runs (the least disturbed on a shared machine); peak memory of
    the first."""
    best = float("inf")
    for i in range(repeat):
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        if i == 0:
            first_mem = mem.mb
    seconds = best
    return {"seconds": round(seconds, 3), "tokens_per_s": round(new_tokens / seconds, 1),
            "peak_mem_mb": round(first_mem, 1)}


def window_recompute_extend(prior: ContentPrior, grid: torch.Tensor, new_cols: int, generator):
    """The released code's way: for every new token, run the whole window around it, read one position.

    The window is centred on the token where the grid allows (taming's sliding-window sampler)."""
    B, H, W = grid.shape
    R, C = prior.cfg.block_rows, prior.cfg.block_cols
    out = torch.zeros(B, H, W + new_cols, dtype=torch.long, device=grid.device)
    out[:, :, :W] = grid
    for i in range(H):
        for j in range(W, W + new_cols):
            top = min(max(i - R // 2, 0), H - R)
            left = min(max(j - C // 2, 0), W + new_cols - C)
            cell = (i - top) * C + (j - left)
            logits = prior.window_logits(out[:, top : top + R, left : left + C])[:, cell]
            probs = torch.softmax(logits.float(), -1)
            out[:, i, j] = torch.multinomial(probs, 1, generator=generator)[:, 0]
    return out


CASES = {  # name -> (description, baseline name, new tokens per sample)
    "gen16": ("generate 16x16", "mingpt_sample", 256),
    "gen32": ("generate 32x32 (sliding window)", "mingpt_sample", 1024),
    "extend": ("extend 16x16 by 8 columns", "window_recompute", 16 * 8),
}
CTX = 16


def run_one(args: argparse.Namespace, case: str, method: str) -> dict:
    """Time one (case, method) in this process, after a short warm-up; memory from the start of the run."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    B = args.batch
    gen = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        if method == "ours" or case == "extend":
            cfg = PriorConfig(vocab_size=args.vocab, block_rows=CTX, block_cols=CTX, n_layer=args.layers,
                              n_head=args.heads, n_embd=args.width)
            prior = ContentPrior(cfg).to(device).eval()
            start = torch.randint(0, args.vocab, (B, CTX, CTX), generator=torch.Generator().manual_seed(1)).to(device)
            generate_grids(prior, B, 2, 2, generator=gen)  # warm-up
            if method == "ours":
                rows, cols = {"gen16": (16, 16), "gen32": (32, 32)}.get(case, (0, 0))
                fn = (lambda: extend_right(prior, start, 8, generator=gen)) if case == "extend" else (
                    lambda: generate_grids(prior, B, rows, cols, generator=gen, allow_window=True))
            else:
                fn = lambda: window_recompute_extend(prior, start, 8, gen)  # noqa: E731
        else:
            # the baseline GPT: same depth/width/heads; one extra vocabulary entry is its start token
            mingpt = MinGPT(vocab_size=args.vocab + 1, block_size=CTX * CTX, n_layer=args.layers,
                            n_head=args.heads, n_embd=args.width).to(device).eval()
            x0 = torch.full((B, 1), args.vocab, dtype=torch.long, device=device)
            mingpt_sample(mingpt, x0, steps=4, sample=True)  # warm-up
            steps = CASES[case][2]
            fn = lambda: mingpt_sample(mingpt, x0, steps=steps, sample=True)  # noqa: E731
        return measure(fn, device, B * CASES[case][2], args.repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1, help="samples generated together")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--repeat", type=int, default=1, help="time the best of N runs of each measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)  # CASE:METHOD, run in a fresh process
    args = ap.parse_args()
    if args.child:
        case, method = args.child.split(":")
        print(json.dumps(run_one(args, case, method)))
        return
    cases = args.cases.split(",")
    if set(cases) - set(CASES):
        ap.error(f"unknown case(s) {sorted(set(cases) - set(CASES))}; choose from {', '.join(CASES)}")

    # every measurement in its own process, so that memory freed by one run cannot hide the next one's peak
    forwarded = [f"--{k}={v}" for k, v in vars(args).items() if k not in ("cases", "child") and v is not None]
    results = []
    for case in cases:
        name, baseline, per_sample = CASES[case]
        row = {"case": name, "new_tokens": args.batch * per_sample}
        for method in ("ours", "baseline"):
            out = subprocess.run([sys.executable, __file__, *forwarded, "--child", f"{case}:{method}"],
                                 capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{case}:{method} failed:\n{out.stderr[-3000:]}")
            row["ours" if method == "ours" else baseline] = json.loads(out.stdout.strip().splitlines()[-1])
        row["speedup"] = round(row[baseline]["seconds"] / row["ours"]["seconds"], 1)
        results.append(row)
        print(json.dumps(row), flush=True)

    params = ContentPrior(PriorConfig(vocab_size=args.vocab, block_rows=CTX, block_cols=CTX, n_layer=args.layers,
                                      n_head=args.heads, n_embd=args.width)).num_params()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report = {
        "machine": {"device": str(device), "cpu": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "model": {"layers": args.layers, "width": args.width, "heads": args.heads, "vocab": args.vocab,
                  "context": f"{CTX}x{CTX}", "params": params, "batch": args.batch},
        "repeat": args.repeat,
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
