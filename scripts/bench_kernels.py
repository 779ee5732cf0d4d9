"""Benchmark the kernels against their baselines, measured in the same run; prints one JSON document.

    python scripts/bench_kernels.py                 # CUDA if present, else CPU
    python scripts/bench_kernels.py --only lookup   # one section: lookup | attention | decode
    python scripts/bench_kernels.py --full          # on CPU, also N=65536 x K=8192 (taming needs ~8 GB)

codebook lookup: ours (Triton on CUDA; the chunked torch path everywhere) vs taming's VectorQuantizer
search (z^2 + e^2 - 2 z.e over the whole N x K matrix, then argmin) and torch.cdist(z, e).argmin.
attention: ours vs SDPA and vs minGPT's explicit-softmax attention (taming.modules.transformer.mingpt),
causal, head dim 64, forward and forward+backward. decode: one query per sequence against its
cache, ours vs SDPA over the full cache. Ratios are baseline time / our time (> 1: ours faster) and
our peak memory / baseline peak memory. Peak memory is the extra memory a call needs above its
inputs: torch's allocator peak on CUDA; on CPU the growth of the max resident set size of a fresh
process (forked from a clean server, so no OpenMP state is inherited) that runs the call once.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqi2i_kernels.reference import codebook_lookup_torch, decode_attention_torch  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NO_CUDA = {"skipped": "no CUDA"}
GRID = {  # the sizes; --smoke swaps in tiny ones to check that the script runs
    "lookup_n": (4096, 65536), "lookup_k": (512, 1024, 8192), "lookup_d": (64, 256),
    "attention_t": (256, 1024), "decode_len": (512, 2048, 8192),
}
MIN_SECONDS = 2.0  # CPU: keep taking turns until each row has run this long (see time_methods)
SMOKE_GRID = {"lookup_n": (100,), "lookup_k": (40,), "lookup_d": (16,), "attention_t": (48,), "decode_len": (80,)}


# --- the implementations being compared ---------------------------------------------------------


def taming_search(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The nearest-code search of taming's VectorQuantizer.forward: the full N x K matrix, then argmin."""
    d = torch.sum(z**2, dim=1, keepdim=True) + torch.sum(codebook**2, dim=1) - 2 * torch.matmul(z, codebook.t())
    return torch.argmin(d, dim=1)


def cdist_search(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return torch.cdist(z, codebook).argmin(dim=1)


def triton_lookup(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    from vqi2i_kernels.triton_lookup import codebook_lookup_triton  # optional: triton

    return codebook_lookup_triton(z, codebook)[0]


def torch_lookup(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return codebook_lookup_torch(z, codebook)[0]


LOOKUP_METHODS = {"triton": triton_lookup, "torch_path": torch_lookup, "taming": taming_search,
                  "cdist": cdist_search}


def mingpt_attention(q, k, v):
    """taming's minGPT CausalSelfAttention core: explicit scores, masked_fill, softmax, @ v."""
    t = q.shape[-2]
    mask = torch.tril(torch.ones(t, t, device=q.device)).view(1, 1, t, t)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(mask[:, :, :t, :t] == 0, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def sdpa_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def triton_attention(q, k, v):
    from vqi2i_kernels.triton_attention import attention_triton  # optional: triton

    return attention_triton(q, k, v, causal=True)


# --- timing and memory -------------------------------------------------------------------------


def time_methods(calls: dict, device: torch.device, reps: int, min_seconds: float) -> dict:
    """Median milliseconds per call of each method (or the exception it raised).

    CUDA: triton's do_bench per method (it also flushes L2 between calls). CPU: the methods take
    turns, round after round (at least `reps` rounds, more while under `min_seconds`, so short calls
    get many samples), so that load from other processes on the machine falls on all of them alike.
    """
    results: dict = {}
    if device.type == "cuda":
        from triton.testing import do_bench  # optional: triton

        for name, fn in calls.items():
            try:
                results[name] = float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
            except Exception as e:  # noqa: BLE001 - e.g. a baseline out of memory: reported, the run goes on
                results[name] = e
                torch.cuda.empty_cache()
        return results
    live = {}
    for name, fn in calls.items():
        try:
            fn()  # warm-up
            live[name] = fn
        except Exception as e:  # noqa: BLE001
            results[name] = e
    samples: dict = {name: [] for name in live}
    start, rounds = time.perf_counter(), 0
    while live and (rounds < reps or (time.perf_counter() - start < min_seconds and rounds < 100)):
        for name, fn in live.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
    results.update({name: statistics.median(ts) for name, ts in samples.items()})
    return results


def cuda_peak_mb(fn, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _cpu_peak_child(method: str, n: int, k: int, d: int, seed: int) -> float:
    """Runs in a fresh process: build the inputs, then the call once; the max-RSS growth in MB."""
    z, codebook = lookup_inputs(n, k, d, torch.float32, torch.device("cpu"), seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    LOOKUP_METHODS[method](z, codebook)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # ru_maxrss is in KB on Linux


_POOL_CTX = None


def cpu_peak_mb(method: str, n: int, k: int, d: int, seed: int) -> float:
    global _POOL_CTX
    if _POOL_CTX is None:
        _POOL_CTX = mp.get_context("forkserver")
        _POOL_CTX.set_forkserver_preload(["torch"])
    with _POOL_CTX.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply_async(_cpu_peak_child, (method, n, k, d, seed)).get(timeout=600)


def sig(x: float, digits: int = 4) -> float:
    """x to `digits` significant digits, for readable JSON."""
    return float(f"{x:.{digits}g}")


def measure_methods(calls: dict, device: torch.device, reps: int, *, flops: float | None = None,
                    nbytes: float | None = None, memory: dict | None = None) -> dict:
    """{method: {"ms", "tflops" or "gbps", "peak_mb"}} or {method: {"error": ...}}."""
    times = time_methods(calls, device, reps, MIN_SECONDS)
    rows = {}
    for name in calls:
        ms = times[name]
        if isinstance(ms, Exception):
            rows[name] = {"error": f"{type(ms).__name__}: {ms}"[:300]}
            continue
        row = {"ms": sig(ms)}
        if flops:
            row["tflops"] = sig(flops / ms / 1e9)
        if nbytes:
            row["gbps"] = sig(nbytes / ms / 1e6)
        if memory is not None:
            try:
                row["peak_mb"] = sig(memory[name]())
            except Exception as e:  # noqa: BLE001
                row["peak_mb_error"] = f"{type(e).__name__}: {e}"[:300]
        rows[name] = row
    return rows


def add_ratios(row: dict, ours: list[str], baselines: list[str]) -> None:
    """speedup_<ours>_vs_<base> = base ms / our ms; memory_<ours>_vs_<base> = our peak / base peak."""
    m = row["methods"]
    for o in ours:
        for b in baselines:
            if "ms" in m.get(o, {}) and "ms" in m.get(b, {}):
                row[f"speedup_{o}_vs_{b}"] = sig(m[b]["ms"] / m[o]["ms"], 3)
            if m.get(o, {}).get("peak_mb") is not None and m.get(b, {}).get("peak_mb"):
                row[f"memory_{o}_vs_{b}"] = sig(m[o]["peak_mb"] / m[b]["peak_mb"], 3)


# --- sections ----------------------------------------------------------------------------------


def lookup_inputs(n, k, d, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g).to(device, dtype), torch.randn(k, d, generator=g).to(device, dtype)


def bench_lookup(device: torch.device, full: bool, reps: int) -> list[dict]:
    cuda = device.type == "cuda"
    rows = []
    for dtype_name in ("fp32", "bf16") if cuda else ("fp32",):
        for n in GRID["lookup_n"]:
            for k in GRID["lookup_k"]:
                for d in GRID["lookup_d"]:
                    if not cuda and not full and n * k > 65536 * 1024:
                        continue  # taming's N x K matrices alone would take ~8 GB of RAM
                    rows.append(lookup_row(device, dtype_name, n, k, d, reps))
                    print(f"lookup {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def lookup_row(device: torch.device, dtype_name: str, n: int, k: int, d: int, reps: int) -> dict:
    cuda = device.type == "cuda"
    seed = n + k + d
    z, codebook = lookup_inputs(n, k, d, DTYPES[dtype_name], device, seed)
    names = [m for m in LOOKUP_METHODS if cuda or m != "triton"]
    calls = {m: partial(LOOKUP_METHODS[m], z, codebook) for m in names}
    if cuda:
        memory = {m: partial(cuda_peak_mb, calls[m], device) for m in names}
    else:
        memory = {m: partial(cpu_peak_mb, m, n, k, d, seed) for m in names}
    row = {"N": n, "K": k, "D": d, "dtype": dtype_name, "methods": {} if cuda else {"triton": dict(NO_CUDA)}}
    row["methods"].update(measure_methods(calls, device, reps, flops=2.0 * n * k * d, memory=memory))
    reference = taming_search(z, codebook)
    for m in names:
        if m != "taming" and "ms" in row["methods"][m]:
            agree = (calls[m]() == reference).float().mean().item()
            row["methods"][m]["index_agreement_with_taming"] = round(agree, 6)
    add_ratios(row, ["triton", "torch_path"], ["taming", "cdist"])
    return row


def _forward(fn, q, k, v):
    with torch.no_grad():
        return fn(q, k, v)


def _forward_backward(fn, q, k, v, grad):
    q.grad = k.grad = v.grad = None
    fn(q, k, v).backward(grad)


def bench_attention(device: torch.device, reps: int) -> list[dict]:
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    b, h, dh = (16, 8, 64) if cuda else (2, 8, 64)
    methods = {"triton": triton_attention, "sdpa": sdpa_attention, "mingpt": mingpt_attention}
    rows = []
    for t in GRID["attention_t"]:
        g = torch.Generator().manual_seed(t)
        q, k, v, grad = (torch.randn(b, h, t, dh, generator=g).to(device, dtype) for _ in range(4))
        qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
        fwd_flops = 4.0 * b * h * t * t * dh / 2  # causal: half the score matrix
        for mode in ("forward", "forward+backward"):
            row = {"B": b, "H": h, "T": t, "head_dim": dh, "causal": True, "dtype": str(dtype).split(".")[1],
                   "mode": mode, "methods": {}}
            names = [m for m in methods if cuda or m != "triton"]
            if mode == "forward":
                calls = {m: partial(_forward, methods[m], q, k, v) for m in names}
                flops = fwd_flops
            else:  # backward = 2.5 x forward (FlashAttention's convention)
                calls = {m: partial(_forward_backward, methods[m], qg, kg, vg, grad) for m in names}
                flops = 3.5 * fwd_flops
            memory = {m: partial(cuda_peak_mb, calls[m], device) for m in names} if cuda else None
            if not cuda:
                row["methods"]["triton"] = dict(NO_CUDA)
            row["methods"].update(measure_methods(calls, device, reps, flops=flops, memory=memory))
            if cuda and mode == "forward" and "ms" in row["methods"]["triton"]:
                err = (_forward(triton_attention, q, k, v).float() - _forward(sdpa_attention, q, k, v).float())
                row["methods"]["triton"]["max_abs_diff_vs_sdpa"] = float(err.abs().max())
            add_ratios(row, ["triton"], ["sdpa", "mingpt"])
            if not cuda and "ms" in row["methods"]["sdpa"] and "ms" in row["methods"]["mingpt"]:
                # on CPU our attention is the torch path, which is SDPA itself
                speedup = row["methods"]["mingpt"]["ms"] / row["methods"]["sdpa"]["ms"]
                row["speedup_torch_path_vs_mingpt"] = sig(speedup, 3)
            rows.append(row)
            print(f"attention {row}", file=sys.stderr, flush=True)
    return rows


def triton_decode(q, k_cache, v_cache, lengths):
    from vqi2i_kernels.triton_decode import decode_attention_triton  # optional: triton

    return decode_attention_triton(q, k_cache, v_cache, lengths)


def sdpa_full_cache(q, k_cache, v_cache, lengths):
    """Every slot of the cache is valid (the benchmark fills it), so no mask: SDPA's fastest case."""
    return F.scaled_dot_product_attention(q[:, :, None], k_cache, v_cache)[:, :, 0]


def bench_decode(device: torch.device, reps: int) -> list[dict]:
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    b, h, dh = 8, 8, 64
    methods = {"triton": triton_decode, "sdpa_full_cache": sdpa_full_cache,
               "torch_path_masked_sdpa": decode_attention_torch}
    rows = []
    for length in GRID["decode_len"]:
        g = torch.Generator().manual_seed(length)
        q = torch.randn(b, h, dh, generator=g).to(device, dtype)
        kc, vc = (torch.randn(b, h, length, dh, generator=g).to(device, dtype) for _ in range(2))
        lengths = torch.full((b,), length, device=device, dtype=torch.long)
        nbytes = 2.0 * b * h * length * dh * kc.element_size()  # K and V read once
        row = {"B": b, "H": h, "cache_len": length, "head_dim": dh, "dtype": str(dtype).split(".")[1],
               "methods": {}}
        with torch.no_grad():
            names = [m for m in methods if cuda or m != "triton"]
            if not cuda:
                row["methods"]["triton"] = dict(NO_CUDA)
            calls = {m: partial(methods[m], q, kc, vc, lengths) for m in names}
            row["methods"].update(measure_methods(calls, device, reps, nbytes=nbytes))
            for m in names:
                if "ms" in row["methods"][m]:
                    row["methods"][m]["us_per_step"] = sig(row["methods"][m]["ms"] * 1e3)
            if cuda and "ms" in row["methods"]["triton"]:
                err = triton_decode(q, kc, vc, lengths).float() - sdpa_full_cache(q, kc, vc, lengths).float()
                row["methods"]["triton"]["max_abs_diff_vs_sdpa"] = float(err.abs().max())
        add_ratios(row, ["triton"], ["sdpa_full_cache", "torch_path_masked_sdpa"])
        rows.append(row)
        print(f"decode {row}", file=sys.stderr, flush=True)
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lookup", "attention", "decode"], help="run one section")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--full", action="store_true", help="on CPU, the whole lookup grid (~8 GB RAM)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per CPU measurement (median)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that the script runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    global MIN_SECONDS
    if args.smoke:
        GRID.update(SMOKE_GRID)
        MIN_SECONDS = 0.0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_kernels: error: --device cuda but no CUDA device is available")
    torch.manual_seed(0)
    try:
        import triton  # optional

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    result = {
        "command": " ".join(["python", "scripts/bench_kernels.py", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu_name()})",
        "cpu_threads": torch.get_num_threads(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],  # other work sharing the machine
        "torch": torch.__version__,
        "triton": triton_version,
    }
    if args.only in (None, "lookup"):
        result["lookup"] = bench_lookup(device, args.full, args.reps)
    if args.only in (None, "attention"):
        result["attention"] = bench_attention(device, args.reps)
    if args.only in (None, "decode"):
        result["decode"] = bench_decode(device, args.reps)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
