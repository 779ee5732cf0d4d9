"""Everything only a GPU can show, in one command: the environment, then the kernels, training, the prior's
sampling and translation, each check under its own time cap; one JSON and one markdown report.

    python scripts/gpu_check.py --check-only                      # what this machine lacks, one line each
    python scripts/gpu_check.py --out OUT                         # on the GPU machine (--budget 420 s)
    python scripts/gpu_check.py --wheels DIR --out OUT            # first install missing packages from DIR
    python scripts/gpu_check.py --tiny --device cpu --out OUT     # every check at toy sizes on the CPU

Run from the source tree: the repository root goes on sys.path, so vqi2i need not be installed. Nothing
here reaches the network. Each check runs in a forked process of its own (its own process group, killed
at its time cap), so a check that raises, hangs or crashes the CUDA context costs only its own figures;
what it reported before a cap cut it off is kept; the training speed runs are time-boxed (at the cap they
stop and report the steps they took). Check caps share `--budget` in proportion to their `share`, and time
a check leaves unused passes to the checks after it. `--wheels DIR` pip-installs what is missing from the
wheels in DIR into a scratch folder put on sys.path (the machine's Python is left alone). The report goes
to OUT/gpu_check.json and OUT/gpu_check.md (also printed), every check's output to OUT/gpu_check.log. Exit
status: 0 nothing failed, 1 the report was written and something failed (or could not run), 2 a usage error.

Imports: only the standard library is imported at the top. Everything else (torch, triton, the project,
bench_kernels and peak_memory, which import torch) is imported inside the check that needs it, on purpose:
the machine may lack any of these packages (PACKAGES; the environment probe reports which, and `--wheels`
puts them on sys.path only once the script runs), so a missing one costs its own checks, not the report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
for _p in (str(SCRIPTS), str(ROOT)):  # the tree first: vqi2i need not be installed, and an install elsewhere loses
    if _p in sys.path:
        sys.path.remove(_p)
    sys.path.insert(0, _p)

DEFAULT_BUDGET = 420.0  # seconds for all checks together; step counts are scaled by budget / DEFAULT_BUDGET
PROBE_CAP = 90.0  # the environment probe's own cap (not part of the budget)
GRACE_S = 10.0  # at its cap a check gets SIGTERM (CapReached), then this long to report, then SIGKILL
LOG_FILE = "gpu_check.log"  # every check's output, one after the other (few files come back from a device)
LOG_TAIL_BYTES = 400_000  # of each check's output in LOG_FILE, the end
WORKER_FLAG = "--torchrun-worker"  # torchrun starts this script with it: see torchrun_worker()
TRAIN_CONFIG = {False: ROOT / "configs" / "yosemite256.yaml", True: ROOT / "configs" / "tiny.yaml"}
PRIOR_CONFIG = {False: ROOT / "configs" / "prior_paper.yaml", True: ROOT / "configs" / "prior_tiny.yaml"}

# (import name, pip requirement, what needs it): what a bare machine with torch and triton may lack
PACKAGES: list[tuple[str, str, str]] = [
    ("torch", "torch", "every check"),
    ("triton", "triton", "kernels"),
    ("numpy", "numpy", "training, prior, translate"),
    ("PIL", "pillow", "training, translate"),
    ("yaml", "PyYAML", "training, prior, translate"),
    ("omegaconf", "omegaconf", "training, prior, translate"),
    ("einops", "einops", "training, translate"),
    ("safetensors", "safetensors", "training, prior, translate"),
    ("tqdm", "tqdm", "training, prior, translate"),
    ("taming", "taming-transformers==0.0.1", "training, translate"),
]
PROJECT = ("torch", "numpy", "PIL", "yaml", "omegaconf", "einops", "safetensors", "tqdm", "taming")
KERNELS = ("torch", "triton")
NOT_SELECTED = "not selected (--only/--skip)"


class UsageError(Exception):
    """A mistake on the command line: reported as one line, exit status 2."""


class CapReached(BaseException):
    """Raised in a check's process at its time cap (SIGTERM): a time-boxed check stops here and reports."""


def _on_sigterm(signum, frame) -> None:
    raise CapReached("the check's time cap was reached")


# ----------------------------------------------------------------------------- the registry


@dataclass
class Context:
    """What a check gets: where to work, how big to go, and how to report figures before it ends."""

    device: str  # "cuda" or "cpu"
    tiny: bool
    budget: float
    out: Path
    work: Path  # scratch space (data sets, run folders), removed at the end
    env: dict = field(default_factory=dict)
    result_path: Path | None = None  # set in the check's own process

    @property
    def logs(self) -> Path:
        """Each check's output while it runs; merged into OUT/gpu_check.log at the end."""
        return self.work / "logs"

    @property
    def scale(self) -> float:
        return self.budget / DEFAULT_BUDGET

    def steps(self, full: int, tiny: int, least: int = 2) -> int:
        """A step count: `tiny` with --tiny, else `full` scaled by the budget (at least `least`)."""
        return tiny if self.tiny else max(least, round(full * self.scale))

    def partial(self, figures: dict) -> None:
        """Figures so far: kept in the report if the check is cut off or fails later."""
        _write_result(self.result_path, {"status": "running", "figures": figures})


@dataclass(frozen=True)
class Check:
    section: str  # kernels | training | prior | translate
    name: str
    run: Callable[[Context], dict]  # -> figures: {"rows": [flat dicts], "notes": [...], ...}
    share: float  # of the budget, before time left by earlier checks is passed on
    needs: tuple[str, ...] = ()  # import names (PACKAGES) without which it is skipped
    after: str | None = None  # a check that must have passed first ("section.name")

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def _write_result(path: Path | None, result: dict) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str, allow_nan=True))
    os.replace(tmp, path)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (f"{type(e).__name__}: {text[0]}" if text else type(e).__name__)[:400]


def sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def dtype_name(dtype) -> str:
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(dtype).split(".")[-1], str(dtype))


# ----------------------------------------------------------------------------- the environment


def probe_environment(ctx: Context) -> dict:
    """Python, packages, the CUDA device, and the project as imported from the tree (run as a check)."""
    env: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                           "platform": platform.platform(), "cpu": cpu_name(), "cpus": os.cpu_count()}
    packages = {}
    for module, requirement, needed_by in PACKAGES:
        try:
            importlib.import_module(module)
            packages[module] = {"version": _version(module, requirement), "requirement": requirement}
        except Exception as e:  # noqa: BLE001 - a broken install is as missing as an absent one
            packages[module] = {"missing": one_line(e), "requirement": requirement, "needed_by": needed_by}
    env["packages"] = packages
    if "version" in packages.get("torch", {}):
        import torch

        cuda = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
        if cuda["available"]:
            props = torch.cuda.get_device_properties(0)
            cuda.update(count=torch.cuda.device_count(), name=props.name,
                        capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                        memory_gib=round(props.total_memory / 2**30, 1), sms=props.multi_processor_count,
                        cudnn=torch.backends.cudnn.version())
        env["cuda"] = cuda
    try:
        import vqi2i
        import vqi2i_kernels as kernels

        paths = {"vqi2i": str(Path(vqi2i.__file__).parent), "kernels": str(Path(kernels.__file__).parent)}
        from_tree = all(Path(p).resolve().is_relative_to(ROOT) for p in paths.values())
        env["project"] = {**paths, "from_tree": from_tree}
        import vqi2i.train.trainer  # noqa: F401 - everything the training checks import

        env["project"]["importable"] = True
    except Exception as e:  # noqa: BLE001
        env.setdefault("project", {})["error"] = one_line(e)
    return env


def _version(module: str, requirement: str) -> str:
    dist = requirement.split("==")[0]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get(module), "__version__", "?"))


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def missing_packages(env: dict) -> list[str]:
    return [m for m, info in env.get("packages", {}).items() if "missing" in info]


def environment_lines(env: dict) -> list[str]:
    """The probe as short lines: what is there, and one line for each thing that is missing."""
    lines = [f"python     {env.get('python')} ({env.get('executable')})"]
    pk = env.get("packages", {})
    for module, info in pk.items():
        if "version" in info:
            lines.append(f"ok         {module} {info['version']}")
        else:
            lines.append(f"MISSING    {module} (pip: {info['requirement']}), needed by {info['needed_by']}: "
                         f"{info['missing']}")
    cuda = env.get("cuda")
    if cuda is None:
        lines.append("MISSING    CUDA: torch is not importable")
    elif cuda.get("available"):
        lines.append(f"ok         CUDA {cuda['torch_cuda']}: {cuda['name']}, capability {cuda['capability']}, "
                     f"{cuda['memory_gib']} GiB, {cuda['count']} device(s), cuDNN {cuda['cudnn']}")
    else:
        lines.append(f"MISSING    CUDA device: torch.cuda.is_available() is False (torch built for CUDA "
                     f"{cuda.get('torch_cuda')}); only --tiny --device cpu can run here")
    project = env.get("project", {})
    if project.get("importable"):
        where = "from this source tree" if project["from_tree"] else "NOT from this source tree"
        lines.append(f"ok         project: vqi2i {where} ({project['vqi2i']})")
    else:
        lines.append(f"MISSING    project: vqi2i does not import: {project.get('error', 'unknown error')}")
    missing = [pk[m]["requirement"] for m in missing_packages(env) if m not in ("torch", "triton")]
    if missing:
        py = ".".join(str(env.get("python", "3.11")).split(".")[:2])
        lines.append(f"wheels     on a machine with network: python3 -m pip download --no-deps --only-binary=:all: "
                     f"--python-version {py} --implementation cp --platform manylinux_2_28_x86_64 --platform "
                     f"manylinux2014_x86_64 -d .whl {' '.join(missing)}")
        lines.append("           then here: python3 scripts/gpu_check.py --wheels .whl --out OUT")
    return lines


def install_wheels(wheels: Path, env: dict, target: Path, log: Path) -> dict:
    """The missing packages from the wheels in `wheels` (no index, no dependencies), installed into `target`,
    which goes on sys.path here and on PYTHONPATH for subprocesses: the machine's Python is left as it is
    (a system Python may refuse pip installs, PEP 668)."""
    wanted = [env["packages"][m]["requirement"] for m in missing_packages(env) if m not in ("torch", "triton")]
    if not wanted:
        return {"installed": [], "note": "nothing missing"}
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", str(wheels),
           "--target", str(target), *wanted]
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        return {"error": f"pip install from {wheels} failed (exit {done.returncode}): "
                         + " | ".join(_log_tail(log, 2)), "wanted": wanted}
    sys.path.insert(2, str(target))  # after the tree and scripts/
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), os.environ.get("PYTHONPATH")) if p)
    importlib.invalidate_caches()
    return {"installed": wanted, "into": str(target)}


# ----------------------------------------------------------------------------- shared helpers of the checks


def _torch_device(ctx: Context):
    import torch

    return torch.device(ctx.device)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(fn: Callable[[], Any], device) -> float:
    """Extra memory one call needs above what is allocated before it."""
    import bench_kernels
    from peak_memory import PeakMemory

    if device.type == "cuda":
        return bench_kernels.cuda_peak_mb(fn, device)
    with PeakMemory(device) as mem:
        fn()
    return mem.mb


def _best_seconds(fn: Callable[[], Any], device, repeats: int) -> float:
    """The fastest of `repeats` timed calls (other load only ever adds time)."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def flat_row(row: dict) -> dict:
    """bench_kernels' {"methods": {m: {k: v}}} row as one flat dict: m_k columns in place of "methods"."""
    out: dict = {}
    for key, value in row.items():
        if key == "methods":
            for method, figures in value.items():
                out.update({f"{method}_{k}": v for k, v in figures.items()})
        else:
            out[key] = value
    return out


# ----------------------------------------------------------------------------- kernels


def _kernels_ready(ctx: Context):
    """The device for the kernel checks. On the CPU the kernels run under the Triton interpreter, which
    must be switched on before triton is first imported (this process is fresh: nothing imported it)."""
    if ctx.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    import bench_kernels

    from vqi2i_kernels import triton_common

    if ctx.device == "cpu" and not triton_common.INTERPRETED:
        raise RuntimeError("triton was imported before TRITON_INTERPRET=1 could be set: the kernels cannot run on CPU")
    if ctx.tiny:
        bench_kernels.MIN_SECONDS = 0.0  # one timed round per method: toy sizes check that the code runs
    return _torch_device(ctx)


LOOKUP_TOL = {"fp32": 1e-5, "bf16": 1e-4}  # chosen distance above the exact minimum, relative to |z|^2 + |e|^2
ATTN_TOL = {"fp32": 1e-4, "bf16": 5e-2}  # max error relative to max(1, max |reference|)
CORRECTNESS_SHAPES = {
    False: {"lookup": [(1000, 1000, 72), (4097, 1024, 256), (33, 130, 24)],  # N, K, D: no tile multiples
            "attention": [(2, 3, 300, 300, 64, True), (1, 2, 77, 203, 64, True), (2, 2, 129, 129, 40, False),
                          (1, 16, 256, 256, 32, True)],  # B, H, Tq, Tk, Dh, causal; the last: the prior's heads
            "decode": [(3, 16, 300, 32, (1, 300, 157)), (8, 8, 1000, 64, (1000, 999, 513, 64, 1, 700, 128, 77))]},
    True: {"lookup": [(37, 50, 40), (33, 130, 24)],
           "attention": [(1, 2, 40, 40, 16, True), (1, 2, 19, 50, 24, False)],
           "decode": [(3, 2, 70, 16, (1, 70, 33))]},
}


def _randn(*shape, dtype, device, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)


def lookup_correct(device, dtype_name: str, n: int, k: int, d: int, metric: str) -> dict:
    """The kernel's nearest codes against exact (fp64) distances of the same values, and the torch path."""
    import bench_kernels
    import torch
    import torch.nn.functional as F

    from vqi2i_kernels.reference import codebook_lookup_torch
    from vqi2i_kernels.triton_lookup import codebook_lookup_triton

    z, e = bench_kernels.lookup_inputs(n, k, d, bench_kernels.DTYPES[dtype_name], device, n + k + d)
    idx, dist = codebook_lookup_triton(z, e, metric=metric)
    ref_idx, _ = codebook_lookup_torch(z, e, metric=metric)
    z64, e64 = z.double(), e.double()
    if metric == "l2":
        exact = (z64 * z64).sum(1, keepdim=True) + (e64 * e64).sum(1) - 2 * z64 @ e64.t()
        scale = (z64 * z64).sum(1) + (e64 * e64).sum(1)[idx]
    else:
        exact = 1 - F.normalize(z64, dim=1) @ F.normalize(e64, dim=1).t()
        scale = torch.ones(n, dtype=torch.float64, device=device)
    rows = torch.arange(n, device=device)
    chosen = exact[rows, idx]
    excess = float(((chosen - exact.min(1).values) / scale).max())
    dist_err = float(((dist.double() - chosen).abs() / scale).max())
    tol = LOOKUP_TOL[dtype_name]
    return {"kernel": "lookup", "dtype": dtype_name, "shape": f"N={n} K={k} D={d} {metric}",
            "max_err": sig(max(excess, dist_err), 3), "tol": tol, "ok": excess <= tol and dist_err <= tol,
            "index_agreement_with_torch_path": round(float((idx == ref_idx).float().mean()), 6)}


def attention_correct(device, dtype_name: str, b: int, h: int, tq: int, tk: int, dh: int, causal: bool) -> dict:
    """Forward and all three gradients of the kernel against fp32 torch on the same values."""
    import bench_kernels

    from vqi2i_kernels.reference import attention_torch
    from vqi2i_kernels.triton_attention import attention_triton

    dtype = bench_kernels.DTYPES[dtype_name]
    q, k, v = (_randn(b, h, t, dh, dtype=dtype, device=device, seed=i).requires_grad_()
               for i, t in enumerate((tq, tk, tk)))
    grad = _randn(b, h, tq, dh, dtype=dtype, device=device, seed=3)
    out = attention_triton(q, k, v, causal=causal)
    out.backward(grad)
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = attention_torch(q32, k32, v32, causal=causal)
    ref.backward(grad.float())
    errors = {}
    for name, got, want in (("out", out, ref), ("dq", q.grad, q32.grad), ("dk", k.grad, k32.grad),
                            ("dv", v.grad, v32.grad)):
        errors[name] = float((got.float() - want).abs().max()) / max(1.0, float(want.abs().max()))
    tol = ATTN_TOL[dtype_name]
    return {"kernel": "attention fwd+bwd", "dtype": dtype_name,
            "shape": f"B={b} H={h} Tq={tq} Tk={tk} Dh={dh} {'causal' if causal else 'full'}",
            "max_err": sig(max(errors.values()), 3), "tol": tol, "ok": max(errors.values()) <= tol,
            "worst": max(errors, key=errors.get)}


def decode_correct(device, dtype_name: str, b: int, h: int, tmax: int, dh: int, lengths: tuple) -> dict:
    import bench_kernels
    import torch

    from vqi2i_kernels.reference import decode_attention_torch
    from vqi2i_kernels.triton_decode import decode_attention_triton

    dtype = bench_kernels.DTYPES[dtype_name]
    q = _randn(b, h, dh, dtype=dtype, device=device, seed=11)
    kc, vc = (_randn(b, h, tmax, dh, dtype=dtype, device=device, seed=s) for s in (12, 13))
    lens = torch.tensor(lengths, device=device)
    out = decode_attention_triton(q, kc, vc, lens)
    ref = decode_attention_torch(q.float(), kc.float(), vc.float(), lens)
    err = float((out.float() - ref).abs().max()) / max(1.0, float(ref.abs().max()))
    tol = ATTN_TOL[dtype_name]
    return {"kernel": "decode", "dtype": dtype_name, "shape": f"B={b} H={h} Tmax={tmax} Dh={dh} ragged",
            "max_err": sig(err, 3), "tol": tol, "ok": err <= tol}


def kernels_correctness(ctx: Context) -> dict:
    """Every Triton kernel against its torch reference, fp32 and bf16, shapes that are no tile multiples."""
    device = _kernels_ready(ctx)
    shapes = CORRECTNESS_SHAPES[ctx.tiny]
    cases: list[tuple[Callable[..., dict], tuple, str]] = []
    for dtype in ("fp32", "bf16"):
        cases += [(lookup_correct, (dtype, *s, metric), f"lookup {s} {metric}")
                  for s in shapes["lookup"] for metric in ("l2", "cosine")]
        cases += [(attention_correct, (dtype, *s), f"attention {s}") for s in shapes["attention"]]
        cases += [(decode_correct, (dtype, *s), f"decode {s[:4]}") for s in shapes["decode"]]
    rows = []
    for fn, args, label in cases:
        try:
            rows.append(fn(device, *args))
        except Exception as e:  # noqa: BLE001 - one failing case costs its own row
            rows.append({"kernel": label, "dtype": args[0], "error": one_line(e), "ok": False})
        ctx.partial({"rows": rows})
    notes = ["max_err: lookup, how far the chosen code's exact (fp64) distance lies above the nearest one's, "
             "relative to |z|^2 + |e|^2 (1 for cosine); attention and decode, the largest error of the output "
             "(and of dq, dk, dv) against fp32 torch on the same values, relative to max(1, max |reference|)"]
    if ctx.device == "cpu":
        notes.append("CPU: the kernels ran under the Triton interpreter (TRITON_INTERPRET=1)")
    return {"rows": rows, "passed": sum(bool(r.get("ok")) for r in rows), "cases": len(rows), "notes": notes}


def kernels_lookup(ctx: Context) -> dict:
    """Codebook lookup: the Triton kernel and the torch path against taming's search, time and peak memory."""
    import bench_kernels

    device = _kernels_ready(ctx)
    n, k, d = (128, 32, 16) if ctx.tiny else (65536, 1024, 256)
    rows = []
    for dtype in ("fp32",) if ctx.tiny else ("fp32", "bf16"):
        z, e = bench_kernels.lookup_inputs(n, k, d, bench_kernels.DTYPES[dtype], device, n + k + d)
        methods = {"triton": bench_kernels.triton_lookup, "torch_path": bench_kernels.torch_lookup,
                   "taming": bench_kernels.taming_search}
        calls = {m: partial(fn, z, e) for m, fn in methods.items()}
        memory = {m: partial(_peak_mb, calls[m], device) for m in calls}
        row = {"N": n, "K": k, "D": d, "dtype": dtype,
               "methods": bench_kernels.measure_methods(calls, device, 1 if ctx.tiny else 3,
                                                        flops=2.0 * n * k * d, memory=memory)}
        reference = bench_kernels.taming_search(z, e)
        for m in ("triton", "torch_path"):
            if "ms" in row["methods"][m]:
                row["methods"][m]["index_agreement_with_taming"] = round(float((calls[m]() == reference)
                                                                               .float().mean()), 6)
        bench_kernels.add_ratios(row, ["triton", "torch_path"], ["taming"])
        rows.append(flat_row(row))
        ctx.partial({"rows": rows})
    return {"rows": rows, "notes": ["speedup_X_vs_Y = Y's time / X's time; memory_X_vs_Y = X's peak / Y's peak; "
                                    "peak = extra memory one call needs above its inputs"]}


def _bind(runner: Callable, tensors: tuple, fn: Callable) -> Callable[[], Any]:
    """runner(fn, *tensors) as a call without arguments (bench_kernels' _forward / _forward_backward)."""
    return partial(runner, fn, *tensors)


def _sdpa_flash_context(device):
    if device.type != "cuda":
        return None
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return partial(sdpa_kernel, [SDPBackend.FLASH_ATTENTION])


def kernels_attention(ctx: Context) -> dict:
    """Causal attention, head dim 64: the Triton kernel against SDPA (flash backend, and SDPA's own choice)."""
    import bench_kernels
    import torch

    device = _kernels_ready(ctx)
    dtype = torch.float32 if ctx.tiny else torch.bfloat16
    b, h, dh = (1, 2, 16) if ctx.tiny else (16, 8, 64)
    flash = _sdpa_flash_context(device)
    rows = []
    for t in (32, 48) if ctx.tiny else (256, 512, 1024):
        q, k, v, grad = (_randn(b, h, t, dh, dtype=dtype, device=device, seed=t + i) for i in range(4))
        qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
        fwd_flops = 4.0 * b * h * t * t * dh / 2
        for mode in ("forward", "forward+backward"):
            if mode == "forward":
                make, flops = partial(_bind, bench_kernels._forward, (q, k, v)), fwd_flops
            else:
                make, flops = partial(_bind, bench_kernels._forward_backward, (qg, kg, vg, grad)), 3.5 * fwd_flops
            calls = {"triton": make(bench_kernels.triton_attention), "sdpa": make(bench_kernels.sdpa_attention)}
            memory = {m: partial(_peak_mb, calls[m], device) for m in calls}
            methods = bench_kernels.measure_methods(calls, device, 1 if ctx.tiny else 3, flops=flops, memory=memory)
            if flash is not None:  # the whole measurement inside the backend choice: no context switch per call
                with flash():
                    call = make(bench_kernels.sdpa_attention)
                    methods.update(bench_kernels.measure_methods(
                        {"sdpa_flash": call}, device, 3, flops=flops,
                        memory={"sdpa_flash": partial(_peak_mb, call, device)}))
            row = {"T": t, "mode": mode, "dtype": dtype_name(dtype), "B": b, "H": h, "head_dim": dh,
                   "methods": methods}
            if mode == "forward" and "ms" in methods["triton"]:
                err = (bench_kernels._forward(bench_kernels.triton_attention, q, k, v).float()
                       - bench_kernels._forward(bench_kernels.sdpa_attention, q, k, v).float())
                row["max_abs_diff_vs_sdpa"] = sig(float(err.abs().max()), 3)
            bench_kernels.add_ratios(row, ["triton"], ["sdpa_flash", "sdpa"])
            rows.append(flat_row(row))
            ctx.partial({"rows": rows})
    notes = ["sdpa = F.scaled_dot_product_attention with the backend torch picks; sdpa_flash = the same with "
             "SDPBackend.FLASH_ATTENTION only; FLOPs of forward+backward counted as 3.5 x forward"]
    if flash is None:
        notes.append("CPU: SDPA's flash backend needs CUDA, so only SDPA's own choice is compared")
    return {"rows": rows, "notes": notes}


def kernels_decode(ctx: Context) -> dict:
    """One decode step against a KV cache: the Triton kernel against SDPA over the full cache."""
    import bench_kernels
    import torch

    from vqi2i_kernels.reference import decode_attention_torch

    device = _kernels_ready(ctx)
    dtype = torch.float32 if ctx.tiny else torch.bfloat16
    # (B, H, head dim, cache length): the bench's sizes, and the paper-size prior's (16 heads of 32, 256 slots)
    cases = [(2, 2, 16, 40)] if ctx.tiny else [(8, 8, 64, 512), (8, 8, 64, 2048), (8, 8, 64, 8192),
                                                (1, 16, 32, 256), (8, 16, 32, 256)]
    methods = {"triton": bench_kernels.triton_decode, "sdpa_full_cache": bench_kernels.sdpa_full_cache,
               "torch_path_masked_sdpa": decode_attention_torch}
    rows = []
    with torch.no_grad():
        for b, h, dh, length in cases:
            q = _randn(b, h, dh, dtype=dtype, device=device, seed=length)
            kc, vc = (_randn(b, h, length, dh, dtype=dtype, device=device, seed=length + s) for s in (1, 2))
            lengths = torch.full((b,), length, device=device, dtype=torch.long)
            calls = {m: partial(fn, q, kc, vc, lengths) for m, fn in methods.items()}
            row = {"B": b, "H": h, "head_dim": dh, "cache_len": length, "dtype": dtype_name(dtype),
                   "methods": bench_kernels.measure_methods(calls, device, 1 if ctx.tiny else 3,
                                                            nbytes=2.0 * b * h * length * dh * kc.element_size())}
            bench_kernels.add_ratios(row, ["triton"], ["sdpa_full_cache", "torch_path_masked_sdpa"])
            rows.append(flat_row(row))
            ctx.partial({"rows": rows})
    return {"rows": rows, "notes": ["every cache slot valid; gbps counts K and V read once"]}


# ----------------------------------------------------------------------------- training


def scenes_path(ctx: Context) -> Path:
    return ctx.work / "scenes"


def training_data(ctx: Context) -> dict:
    """The synthetic summer/winter scenes (what `vqi2i data scenes OUT --size S` writes), made on the spot.

    On the GPU each rendered training image is also hard-linked under 15 more names: long epochs, so that
    the data workers (which the trainer starts anew every epoch) restart rarely inside a timed stretch."""
    from vqi2i.data.scenes import make_scenes

    size, n_train, n_test, copies = (32, 8, 2, 1) if ctx.tiny else (256, 32, 2, 16)
    t0 = time.perf_counter()
    root = make_scenes(scenes_path(ctx), n_train=n_train, n_test=n_test, size=size, progress=False, overwrite=True)
    for split in ("trainA", "trainB"):
        for f in sorted((root / split).glob("*.png")):
            for c in range(1, copies):
                os.link(f, f.with_name(f"{f.stem}-copy{c:02d}{f.suffix}"))
    return {"rows": [{"size": size, "rendered_per_domain": n_train, "train_per_domain": n_train * copies,
                      "test_per_domain": n_test, "seconds": round(time.perf_counter() - t0, 2)}]}


SPEED_OFF = ["train.compile=false", "train.channels_last=false", "train.fused_adam=false"]
TRAIN_VARIANTS: dict[str, list[str]] = {  # each speed option on alone, against bf16 with every option off
    "fp32": ["train.bf16=false", *SPEED_OFF],
    "bf16": ["train.bf16=true", *SPEED_OFF],
    "compile": ["train.bf16=true", *SPEED_OFF, "train.compile=true"],
    "channels_last": ["train.bf16=true", *SPEED_OFF, "train.channels_last=true"],
    "fused_adam": ["train.bf16=true", *SPEED_OFF, "train.fused_adam=true"],
}


def _eager_compile_for_tiny() -> str:
    """--tiny on the CPU: torch.compile with the eager backend (dynamo traces the networks, no inductor C++
    build, which takes minutes for the tiny model on a CPU)."""
    import torch

    compile_module = torch.nn.Module.compile

    def eager(self, *args, **kwargs):
        return compile_module(self, *args, **{**kwargs, "backend": "eager"})

    torch.nn.Module.compile = eager
    return "--tiny on the CPU: torch.compile ran with backend='eager' (dynamo only; inductor takes minutes here)"


def timed_figures(records: list[dict], warmup: int) -> dict:
    """steps/s over the logged intervals after `warmup` steps, from metrics.jsonl records (None: none yet)."""
    timed = [r for r in records if r["step"] > warmup]
    if not timed:
        return {"timed_steps": 0, "steps_per_s": None}
    starts = [warmup] + [r["step"] for r in timed[:-1]]
    seconds = sum((r["step"] - s) / r["steps_per_s"] for r, s in zip(timed, starts))
    return {"timed_steps": timed[-1]["step"] - warmup, "steps_per_s": (timed[-1]["step"] - warmup) / seconds}


def losses_finite(records: list[dict]) -> bool:
    return bool(records) and all(math.isfinite(v) for r in records for v in r.values()
                                 if isinstance(v, float))


def data_workers(ctx: Context) -> int:
    """Data workers of the timed runs: on the GPU, so that PNG decoding on the CPU does not set the pace."""
    return 0 if ctx.tiny or ctx.device == "cpu" else 4


def train_overrides(ctx: Context, data: Path) -> list[str]:
    return [f"data.root={data}", f"train.device={ctx.device}", f"data.num_workers={data_workers(ctx)}",
            "train.tensorboard=false", "train.image_every=100000000", "train.ckpt_every=100000000"]


def train_variant(variant: str, ctx: Context) -> dict:
    """Up to a few hundred steps of the 256-px config with one set of speed options: steps/s, images/s, peak
    memory, losses finite. Time-boxed: at its cap it stops and reports the steps logged so far."""
    import torch
    from peak_memory import PeakMemory

    from vqi2i.config import load_config
    from vqi2i.train.runtime import read_metrics
    from vqi2i.train.trainer import train

    notes = []
    if variant == "compile" and ctx.device == "cpu":
        notes.append(_eager_compile_for_tiny())
    warmup = 2 if ctx.tiny else 20  # compiling and cuDNN's first choices happen here
    steps = ctx.steps(300, 4, least=warmup)
    cfg = load_config(TRAIN_CONFIG[ctx.tiny], [*train_overrides(ctx, scenes_path(ctx)), *TRAIN_VARIANTS[variant],
                                               f"train.max_steps={warmup + steps}",
                                               f"train.log_every={max(1, warmup // 2)}"])
    device = torch.device(ctx.device)
    run = ctx.work / f"train-{variant}"
    mem = PeakMemory(device)
    t0 = time.perf_counter()
    try:
        with mem:
            train(cfg, run, progress=False)
    except CapReached:
        notes.append(f"stopped at its time cap after {time.perf_counter() - t0:.0f} s: figures of the steps logged")
    wall = time.perf_counter() - t0
    records = read_metrics(run)
    shutil.rmtree(run, ignore_errors=True)  # a 256-px checkpoint is about a GB
    speed = timed_figures(records, warmup)
    batch = int(cfg.train.batch_size)
    bf16 = bool(cfg.train.bf16) and device.type == "cuda"
    if bool(cfg.train.bf16) and not bf16:
        notes.append("bf16 autocast is CUDA only: on the CPU this variant trained in fp32")
    sps = speed["steps_per_s"]
    row = {"variant": variant, "precision": "bf16 autocast" if bf16 else "fp32", "compile": bool(cfg.train.compile),
           "channels_last": bool(cfg.train.channels_last), "fused_adam": bool(cfg.train.fused_adam),
           "batch": batch, "warmup_steps": warmup, "timed_steps": speed["timed_steps"],
           "steps_per_s": sig(sps) if sps else None, "images_per_s": sig(sps * 2 * batch) if sps else None,
           "peak_mem_mb": sig(mem.mb), "wall_s": round(wall, 1), "losses_finite": losses_finite(records),
           "final_total_loss": sig(records[-1]["total"]) if records else None,
           "final_recon": sig(records[-1]["recon"]) if records else None}
    if not sps:
        row["error"] = f"no timed step: {records[-1]['step'] if records else 0} steps logged, {warmup} warm-up"
    elif not row["losses_finite"]:
        row["error"] = "a logged loss is not finite"
    notes.append(f"images_per_s counts both domains (2 x batch per step); data.num_workers={data_workers(ctx)}; "
                 "peak_mem_mb: CUDA max allocated over the run "
                 "(CPU: rise of the peak resident set)")
    return {"rows": [row], "config": str(TRAIN_CONFIG[ctx.tiny].relative_to(ROOT)), "notes": notes}


def torchrun_worker(argv: list[str]) -> int:
    """What torchrun starts: deterministic algorithms on, a one-process group checked with an all-reduce
    (vqi2i itself makes a process group only for two or more processes), then `vqi2i ARGV`."""
    import torch
    import torch.distributed as dist

    from vqi2i.cli import main as vqi2i_main

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    cuda = os.environ.get("GPU_CHECK_DEVICE", "cpu") == "cuda"
    report: dict[str, Any] = {"world_size": int(os.environ.get("WORLD_SIZE", "1")),
                              "backend": "nccl" if cuda else "gloo", "deterministic_algorithms": True}
    if report["world_size"] == 1:
        try:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
            if cuda:
                torch.cuda.set_device(device)
            dist.init_process_group(report["backend"], timeout=datetime.timedelta(seconds=120))
            t = torch.full((4,), 3.0, device=device)
            dist.all_reduce(t)
            report["all_reduce_ok"] = bool((t == 3.0).all())
        except Exception as e:  # noqa: BLE001 - reported; the training still runs
            report["process_group_error"] = one_line(e)
        finally:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    if os.environ.get("GPU_CHECK_WORKER_REPORT"):
        Path(os.environ["GPU_CHECK_WORKER_REPORT"]).write_text(json.dumps(report))
    return vqi2i_main(argv)


def _torchrun(ctx: Context, argv: list, report: Path) -> None:
    pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": pythonpath,
           "GPU_CHECK_DEVICE": ctx.device, "GPU_CHECK_WORKER_REPORT": str(report),
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(Path(__file__)),
           WORKER_FLAG, *map(str, argv)]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    if done.returncode:
        raise RuntimeError(f"torchrun {' '.join(map(str, argv[:2]))} ... exited with status {done.returncode}")


def _weights_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    if x.keys() != y.keys():
        return float("inf")
    return max((float((x[k].double() - y[k].double()).abs().max()) for k in x if x[k].numel()), default=0.0)


def training_torchrun(ctx: Context) -> dict:
    """The 256-px config through torchrun --nproc_per_node=1: a run, and the same run stopped halfway and
    resumed, which must end with the same weights (deterministic algorithms on in both)."""
    from vqi2i.train.runtime import read_metrics

    half = ctx.steps(10, 2, least=2)
    n = 2 * half
    common = [TRAIN_CONFIG[ctx.tiny], *train_overrides(ctx, scenes_path(ctx)), "data.num_workers=0",
              f"train.max_steps={n}", f"train.log_every={max(1, half // 2)}", f"train.ckpt_every={half}",
              f"model.codebook.restart_every={half}", "--device", ctx.device, "--no-progress"]
    full, part = ctx.work / "torchrun-full", ctx.work / "torchrun-part"
    reports = [ctx.work / f"torchrun-{i}.json" for i in range(3)]
    t0 = time.perf_counter()
    _torchrun(ctx, ["train", *common, "--out", full], reports[0])
    full_s = time.perf_counter() - t0
    _torchrun(ctx, ["train", *common, "--out", part, "--stop-at", half], reports[1])
    _torchrun(ctx, ["train", "--resume", part, "--no-progress"], reports[2])
    worker = json.loads(reports[0].read_text()) if reports[0].exists() else {}
    log = ctx.logs / "training.torchrun.log"  # this check's own output: the workers' warnings too
    nondeterministic = sorted(set(re.findall(r"(\w+) does not have a deterministic implementation",
                                             log.read_text(errors="replace") if log.exists() else "")))
    records = read_metrics(full)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rs]  # noqa: E731
    ckpt = f"checkpoints/step-{n:07d}"
    same = {name: (full / ckpt / name).read_bytes() == (part / ckpt / name).read_bytes()
            for name in ("model.safetensors", "disc.safetensors")}
    row = {"steps": n, "stopped_at": half, "backend": worker.get("backend"),
           "process_group": ("all-reduce ok" if worker.get("all_reduce_ok")
                             else worker.get("process_group_error", "all-reduce gave a wrong sum")),
           "steps_per_s": sig(timed_figures(records, records[0]["step"])["steps_per_s"]) if len(records) > 1 else None,
           "wall_s_full_run": round(full_s, 1), "losses_finite": losses_finite(records),
           "metrics_identical": strip(records) == strip(read_metrics(part)),
           "model_identical": same["model.safetensors"], "disc_identical": same["disc.safetensors"],
           "nondeterministic_ops": ", ".join(nondeterministic) or "none warned"}
    if not all(same.values()):
        row["max_abs_weight_diff"] = sig(max(_weights_diff(full / ckpt / k, part / ckpt / k) for k in same), 3)
    row["ok"] = all(same.values()) and row["metrics_identical"] and row["losses_finite"]
    if not row["ok"]:
        row["error"] = "the stopped-and-resumed run did not end where the uninterrupted run ended"
    notes = ["WORLD_SIZE=1: vqi2i trains as one process (it makes a process group only for 2+ processes); "
             f"the {row['backend']} backend is checked by a one-process all-reduce before training",
             "both runs with torch.use_deterministic_algorithms(True, warn_only=True) and "
             "CUBLAS_WORKSPACE_CONFIG=:4096:8; data.num_workers=0; steps_per_s excludes the first logged interval"]
    return {"rows": [row], "notes": notes}


# ----------------------------------------------------------------------------- prior


def sample_uncached(prior, batch: int, rows: int, cols: int, generator):
    """A grid sampled without a KV cache: every new token runs the whole prefix again."""
    import torch

    from vqi2i.models.prior import window_positions
    from vqi2i.sampling import SamplingOptions, sample_logits

    device = next(prior.parameters()).device
    seq = torch.full((batch, rows * cols + 1), prior.start_token, dtype=torch.long, device=device)
    r, c = window_positions(rows, cols, device)
    options = SamplingOptions()
    with torch.no_grad():
        for p in range(rows * cols):
            logits = prior(seq[:, : p + 1], r[: p + 1], c[: p + 1], last_only=True)[:, -1]
            seq[:, p + 1] = sample_logits(logits, options, generator)
    return seq[:, 1:].view(batch, rows, cols)


def prior_sampling(ctx: Context) -> dict:
    """A 16x16 grid from the paper-size prior (random weights: speed does not depend on them), batch 1
    and 8, KV-cached (vqi2i.sampling) against uncached, fp32 and bf16 weights."""
    import torch

    from vqi2i.config import load_prior_config
    from vqi2i.inference import prior_config_of
    from vqi2i.models.prior import ContentPrior
    from vqi2i.sampling import generate_grids

    grid, vocab = (8, 64) if ctx.tiny else (16, 512)  # 512: yosemite256's codebook
    cfg = load_prior_config(PRIOR_CONFIG[ctx.tiny], [f"model.vocab_size={vocab}", f"model.block_rows={grid}",
                                                     f"model.block_cols={grid}"])
    device = _torch_device(ctx)
    repeats = 1 if ctx.tiny else 3
    rows = []
    for dtype in (torch.float32,) if ctx.tiny else (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        prior = ContentPrior(prior_config_of(cfg)).to(device=device, dtype=dtype).eval()
        gen = torch.Generator(device=device).manual_seed(0)
        for batch in (1, 8):
            figures = {}
            for mode in ("cached", "uncached"):
                if mode == "cached":
                    fn = partial(generate_grids, prior, batch, grid, grid, generator=gen)
                else:
                    fn = partial(sample_uncached, prior, batch, grid, grid, gen)
                fn()  # warm-up: autotuning and first-call set-up are not sampling speed
                seconds = _best_seconds(fn, device, repeats if mode == "cached" else max(1, repeats - 1))
                figures[mode] = seconds
                rows.append({"dtype": dtype_name(dtype), "batch": batch, "mode": mode,
                             "grid": f"{grid}x{grid}", "ms_per_grid": sig(seconds * 1e3 / batch),
                             "ms_per_call": sig(seconds * 1e3), "tokens_per_s": sig(batch * grid * grid / seconds)})
                ctx.partial({"rows": rows})
            rows[-2]["speedup_cached_vs_uncached"] = sig(figures["uncached"] / figures["cached"], 3)
        del prior
    params = ContentPrior(prior_config_of(cfg)).num_params()
    return {"rows": rows, "config": str(PRIOR_CONFIG[ctx.tiny].relative_to(ROOT)), "params": params,
            "notes": ["ms_per_grid = the call's time / batch (a call samples `batch` grids together); "
                      "uncached: the whole prefix recomputed for every token; best of the timed calls"]}


# ----------------------------------------------------------------------------- translate


def translate_throughput(ctx: Context) -> dict:
    """256-px translations per second through vqi2i.apps.translate.translate_images, batch 1 and 32."""
    import torch
    from peak_memory import PeakMemory

    from vqi2i.apps.translate import translate_images
    from vqi2i.config import load_config
    from vqi2i.models.build import build_model

    device = _torch_device(ctx)
    config = TRAIN_CONFIG[ctx.tiny]
    torch.manual_seed(0)
    model = build_model(load_config(config, ["train.device=cpu"])).to(device).eval()
    size = 32 if ctx.tiny else 256
    cases = [(1, 4), (4, 8)] if ctx.tiny else [(1, 16), (32, 64)]  # (batch, images)
    rows = []
    for batch, n in cases:
        images = list(torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1)

        def run(imgs, batch=batch):
            return translate_images(model, imgs, "a", "b", style=None, num_samples=1,
                                    generator=torch.Generator().manual_seed(1), batch_size=batch, fit="pad",
                                    device=device)

        run(images[:batch])  # warm-up
        with PeakMemory(device) as mem:
            seconds = _best_seconds(partial(run, images), device, 1)
        if not ctx.tiny:
            seconds = min(seconds, _best_seconds(partial(run, images), device, 1))
        rows.append({"size": size, "batch": batch, "images": n, "seconds": sig(seconds),
                     "images_per_s": sig(n / seconds), "peak_mem_mb": sig(mem.mb)})
        ctx.partial({"rows": rows})
    rows[-1]["speedup_vs_batch1"] = sig(rows[-1]["images_per_s"] / rows[0]["images_per_s"], 3)
    return {"rows": rows, "config": str(config.relative_to(ROOT)),
            "notes": ["fp32, random weights, one random style per image, outputs copied back to the CPU "
                      "(what `vqi2i translate` does); best of the timed passes"]}


# ----------------------------------------------------------------------------- the registry itself

CHECKS: list[Check] = [
    Check("kernels", "correctness", kernels_correctness, 0.14, KERNELS),
    Check("kernels", "lookup", kernels_lookup, 0.05, KERNELS),
    Check("kernels", "attention", kernels_attention, 0.07, KERNELS),
    Check("kernels", "decode", kernels_decode, 0.03, KERNELS),
    Check("training", "data", training_data, 0.03, PROJECT),
    *[Check("training", v, partial(train_variant, v), 0.2 if v == "compile" else 0.05, PROJECT, "training.data")
      for v in TRAIN_VARIANTS],
    Check("training", "torchrun", training_torchrun, 0.14, PROJECT, "training.data"),
    Check("prior", "sampling", prior_sampling, 0.08, PROJECT),
    Check("translate", "throughput", translate_throughput, 0.04, PROJECT),
]


# ----------------------------------------------------------------------------- running checks


def _child(check: Check, ctx: Context, log: Path) -> None:
    """The check's own process: its own process group (killed whole at the cap), its output to its log."""
    os.setpgrp()
    signal.signal(signal.SIGTERM, _on_sigterm)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        figures = check.run(ctx)
        _write_result(ctx.result_path, {"status": "ok", "figures": figures})
    except BaseException as e:  # noqa: BLE001 - everything is reported, nothing escapes a check
        traceback.print_exc()
        result = {"status": "error", "reason": one_line(e), "traceback": traceback.format_exc().splitlines()[-12:]}
        if isinstance(e, CapReached):
            result = {"status": "timeout"}
        with contextlib.suppress(Exception):
            result["figures"] = json.loads(ctx.result_path.read_text()).get("figures")
        _write_result(ctx.result_path, result)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def merge_logs(logs: Path, dest: Path) -> None:
    """Every check's output into one file, in the order they ran (the end of each, if long)."""
    with open(dest, "w") as out:
        for log in sorted(logs.glob("*.log"), key=lambda p: p.stat().st_mtime):
            text = log.read_text(errors="replace")
            cut = f"[... {len(text) - LOG_TAIL_BYTES} characters left out ...]\n" if len(text) > LOG_TAIL_BYTES else ""
            out.write(f"===== {log.stem} =====\n{cut}{text[-LOG_TAIL_BYTES:]}\n")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _log_tail(log: Path, lines: int = 6) -> list[str]:
    with contextlib.suppress(OSError):
        return [line[:300] for line in log.read_text(errors="replace").splitlines()[-lines:]]
    return []


def run_one(check: Check, ctx: Context, cap: float) -> dict:
    """Run `check` in a forked process for at most `cap` seconds -> its result."""
    ctx.logs.mkdir(parents=True, exist_ok=True)
    log = ctx.logs / f"{check.key}.log"
    result_path = ctx.work / f"{check.key}.result.json"
    result_path.unlink(missing_ok=True)
    child_ctx = Context(**{**ctx.__dict__, "result_path": result_path})
    proc = mp.get_context("fork").Process(target=_child, args=(check, child_ctx, log), daemon=False)
    t0 = time.perf_counter()
    proc.start()
    capped = False
    try:
        proc.join(cap)
        if proc.is_alive():  # CapReached in the check: a time-boxed one reports, any other stops
            capped = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            proc.join(GRACE_S)
    finally:
        _kill_group(proc.pid)  # the check's leftovers too (data workers, torchrun and its workers)
        proc.join(10)
    seconds = round(time.perf_counter() - t0, 1)
    result: dict = {}
    with contextlib.suppress(OSError, ValueError):
        result = json.loads(result_path.read_text())
    if capped and result.get("status") != "ok":
        result["status"] = "timeout"
        result["reason"] = f"cut off at its time cap of {cap:.0f} s (figures: what it reported before)"
    elif result.get("status") in (None, "running"):
        result["status"] = "crashed"
        result["reason"] = f"its process ended with exit code {proc.exitcode} before reporting"
    result.update(seconds=seconds, cap_s=round(cap, 1), log=f"{LOG_FILE}: {check.key}")
    if result["status"] != "ok":
        result["log_tail"] = _log_tail(log)
    return result


def run_checks(ctx: Context, checks: list[Check], selected: set[str]) -> dict[str, dict]:
    """Every check in order, each under its cap: the budget left, shared by the checks still to run."""
    results: dict[str, dict] = {}
    missing = set(missing_packages(ctx.env))
    left = ctx.budget
    shares_left = sum(c.share for c in checks if c.key in selected)
    for check in checks:
        reason = None
        if check.key not in selected:
            reason = NOT_SELECTED
        elif missing & set(check.needs):
            reason = "missing packages: " + ", ".join(sorted(missing & set(check.needs))) + " (see --check-only)"
        elif check.after and results.get(check.after, {}).get("status") != "ok":
            reason = f"needs {check.after}, which did not pass ({results.get(check.after, {}).get('status')})"
        elif left <= 1:
            reason = "the budget is spent"
        if reason is not None:
            results[check.key] = {"status": "skipped", "reason": reason}
        else:
            cap = left * check.share / shares_left
            results[check.key] = run_one(check, ctx, cap)
            left -= results[check.key]["seconds"]
        if check.key in selected:
            shares_left -= check.share
        r = results[check.key]
        print(f"{check.key:<24} {r['status']:<8} {r.get('seconds', 0):>6.1f} s"
              + (f" of {r['cap_s']:.0f}" if "cap_s" in r else "") + (f"  {r['reason']}" if r.get("reason") else ""),
              flush=True)
    return results


def probe(ctx: Context) -> dict:
    result = run_one(Check("environment", "probe", probe_environment, 1.0), ctx, PROBE_CAP)
    if result["status"] != "ok":
        return {"error": result.get("reason"), "log_tail": result.get("log_tail"), "packages": {}}
    return result["figures"]


# ----------------------------------------------------------------------------- the report


def failures(sections: dict) -> list[str]:
    """One line per thing that failed: a check that did not pass, and every row with an error or ok=false."""
    lines = []
    for section, checks in sections.items():
        for name, r in checks.items():
            if r["status"] != "ok" and r.get("reason") != NOT_SELECTED:
                lines.append(f"{section}.{name}: {r['status']}: {r.get('reason')}")
            for row in (r.get("figures") or {}).get("rows", []):
                errors = [f"{k}: {v}" for k, v in row.items() if k == "error" or k.endswith("_error")]
                if errors or row.get("ok") is False:
                    label = ", ".join(str(row[k]) for k in list(row)[:3])
                    lines.append(f"{section}.{name} [{label}]: " + ("; ".join(errors) or "outside tolerance"))
    return lines


def _rows(sections: dict, key: str) -> list[dict]:
    section, name = key.split(".")
    return ((sections.get(section, {}).get(name) or {}).get("figures") or {}).get("rows", [])


def targets(sections: dict) -> list[dict]:
    """The issue's GPU targets, judged on this run's figures."""
    out = []

    def add(target: str, figure, met) -> None:
        out.append({"target": target, "figure": figure if figure is not None else "not measured",
                    "met": met if figure is not None else None})

    for r in _rows(sections, "kernels.lookup"):
        s = r.get("speedup_triton_vs_taming")
        add(f"lookup ≥ 3x taming, N={r['N']} K={r['K']} D={r['D']} {r['dtype']}", s, s is not None and s >= 3)
    for r in _rows(sections, "kernels.attention"):
        if r["mode"] == "forward":
            s = r.get("speedup_triton_vs_sdpa_flash")
            add(f"attention forward ≥ 0.9x SDPA flash, T={r['T']} {r['dtype']}", s, s is not None and s >= 0.9)
    for r in _rows(sections, "kernels.decode"):
        s = r.get("speedup_triton_vs_sdpa_full_cache")
        add(f"decode ≥ 1x SDPA, B={r['B']} H={r['H']} Dh={r['head_dim']} len={r['cache_len']}", s,
            s is not None and s >= 1)
    for r in _rows(sections, "prior.sampling"):
        if r["batch"] == 1 and r["mode"] == "cached":
            ms = r.get("ms_per_grid")
            add(f"16x16 grid, paper-size prior, batch 1 ≤ 100 ms ({r['dtype']})", ms, ms is not None and ms <= 100)
    return out


def training_ratios(sections: dict) -> list[dict]:
    """Each speed option against bf16 with every option off, and bf16 against fp32 (same run)."""
    by = {name: (r.get("figures") or {}).get("rows", [{}])[0] for name, r in sections.get("training", {}).items()
          if r.get("status") == "ok" and name in TRAIN_VARIANTS}
    out = []
    for name, base in [("bf16", "fp32")] + [(v, "bf16") for v in ("compile", "channels_last", "fused_adam")]:
        a, b = by.get(name, {}), by.get(base, {})
        if a.get("steps_per_s") and b.get("steps_per_s"):
            mem = sig(a["peak_mem_mb"] / b["peak_mem_mb"], 3) if b.get("peak_mem_mb") else None
            out.append({"variant": name, "against": base, "speedup": sig(a["steps_per_s"] / b["steps_per_s"], 3),
                        "peak_mem_ratio": mem})
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "—"
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


def markdown(report: dict) -> str:
    env, cuda = report["environment"], report["environment"].get("cuda") or {}
    device = (f"{cuda['name']} (capability {cuda['capability']}, {cuda['memory_gib']} GiB)"
              if report["device"] == "cuda" and cuda.get("name") else f"CPU ({env.get('cpu')})")
    pk = env.get("packages", {})
    version = lambda m: pk.get(m, {}).get("version", "missing")  # noqa: E731
    lines = [f"### GPU check: {device}, {report['started'][:10]}", "",
             f"`{report['command']}`: {report['started']}, {report['wall_s']} s in all, budget {report['budget_s']} s"
             + (" (--tiny: toy sizes, no figure here is a GPU figure)" if report["tiny"] else ""), "",
             f"python {env.get('python')}, torch {version('torch')} (CUDA {cuda.get('torch_cuda')}, "
             f"cuDNN {cuda.get('cudnn')}), triton {version('triton')}, {env.get('cpus')} CPUs ({env.get('cpu')})"]
    if report.get("wheels"):
        lines += ["", f"wheels: {json.dumps(report['wheels'])}"]
    if report["targets"]:
        lines += ["", "#### Targets", "", *md_table(report["targets"])]
    if report["training_ratios"]:
        lines += ["", "#### Training speed options (ratios of steps/s and of peak memory)", "",
                  *md_table(report["training_ratios"])]
    for section, checks in report["sections"].items():
        for name, r in checks.items():
            head = f"#### {section}.{name}: {r['status']}"
            if "seconds" in r:
                head += f", {r['seconds']} s of {r['cap_s']:.0f}"
            lines += ["", head]
            if r.get("reason"):
                lines += ["", r["reason"]]
            figures = r.get("figures") or {}
            if figures.get("rows"):
                lines += ["", *md_table(figures["rows"])]
            extra = {k: v for k, v in figures.items() if k not in ("rows", "notes")}
            if extra:
                lines += [""] + [f"- {k}: {_fmt(v)}" for k, v in extra.items()]
            if figures.get("notes"):
                lines += [""] + [f"- {n}" for n in figures["notes"]]
    lines += ["", "#### What failed and why", ""]
    lines += [f"- {f}" for f in report["failures"]] or ["nothing"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Checks: " + ", ".join(c.key for c in CHECKS))
    p.add_argument("--out", type=Path, help="folder for gpu_check.json, gpu_check.md and logs/ (required to run)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                   help=f"seconds for all checks together; step counts scale with it (default {DEFAULT_BUDGET:.0f})")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="default: cuda if present")
    p.add_argument("--tiny", action="store_true", help="toy sizes: every check in seconds (with --device cpu)")
    p.add_argument("--check-only", action="store_true", help="only the environment: what is there and what is missing")
    p.add_argument("--wheels", type=Path, help="install missing packages from the wheels in this folder first "
                   "(pip --no-index --no-deps)")
    p.add_argument("--only", default="", help="comma-separated checks or sections to run (default: all)")
    p.add_argument("--skip", default="", help="comma-separated checks or sections to leave out")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (data, run folders)")
    return p.parse_args(argv)


def select(checks: list[Check], only: str, skip: str) -> set[str]:
    names = {c.key for c in checks} | {c.section for c in checks}

    def parse(text: str) -> set[str]:
        items = {s.strip() for s in text.split(",") if s.strip()}
        unknown = sorted(items - names)
        if unknown:
            raise UsageError(f"unknown check or section {', '.join(unknown)}; choose from {', '.join(sorted(names))}")
        return items

    chosen, left_out = parse(only), parse(skip)
    return {c.key for c in checks if (not chosen or c.key in chosen or c.section in chosen)
            and c.key not in left_out and c.section not in left_out}


def resolve_device(requested: str, env: dict, tiny: bool) -> str:
    if "missing" in env.get("packages", {}).get("torch", {"missing": "the probe failed"}):
        raise UsageError(f"torch is not importable with {sys.executable}: "
                         f"{env.get('packages', {}).get('torch', {}).get('missing', env.get('error'))}")
    available = bool((env.get("cuda") or {}).get("available"))
    device = ("cuda" if available else "cpu") if requested == "auto" else requested
    if device == "cuda" and not available:
        raise UsageError("--device cuda, but no CUDA device is available here (torch.cuda.is_available() is False); "
                         "use --tiny --device cpu for the CPU smoke run")
    if device == "cpu" and not tiny:
        raise UsageError("no CUDA device here: the full sizes are for a GPU; use --tiny --device cpu for the CPU "
                         "smoke run")
    return device


def _preload() -> None:
    """Import torch and the project here, once, so that every forked check starts at once. Nothing here
    touches CUDA (a forked process could not use it then) or triton (the CPU checks need the interpreter)."""
    for module in ("torch", "numpy", "vqi2i.train.trainer", "vqi2i.models.prior", "vqi2i.sampling",
                   "vqi2i.apps.translate", "vqi2i.data.scenes", "bench_kernels", "peak_memory"):
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def main(argv: list[str] | None = None, checks: list[Check] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER_FLAG]:
        return torchrun_worker(argv[1:])
    args = parse_args(argv)
    checks = CHECKS if checks is None else checks
    try:
        if not args.check_only and args.out is None:
            raise UsageError("give --out FOLDER for the report (or --check-only)")
        if not args.budget > 0:
            raise UsageError(f"--budget must be > 0 seconds, got {args.budget:g}")
        if args.out is not None and args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is a file, not a folder")
        if args.wheels is not None and not args.wheels.is_dir():
            raise UsageError(f"--wheels {args.wheels} is not a folder")
        selected = select(checks, args.only, args.skip)
    except UsageError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    with contextlib.suppress(Exception):
        importlib.import_module("torch")
    started, started_at = time.perf_counter(), datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out = args.out if args.out is not None else work
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(device=args.device, tiny=args.tiny, budget=args.budget, out=out, work=work)
    try:
        ctx.env = probe(ctx)
        if args.check_only:
            lines = environment_lines(ctx.env) if "error" not in ctx.env else [f"probe failed: {ctx.env['error']}"]
            print("\n".join(lines))
            cuda = (ctx.env.get("cuda") or {}).get("available")
            return 1 if missing_packages(ctx.env) or "error" in ctx.env or not cuda else 0
        wheels = None
        if args.wheels is not None:
            wheels = install_wheels(args.wheels, ctx.env, work / "site-packages", ctx.logs / "wheels.log")
            print(f"wheels: {json.dumps(wheels)}", flush=True)
            ctx.env = probe(ctx)
        try:
            ctx.device = resolve_device(args.device, ctx.env, args.tiny)
        except UsageError as e:
            print(f"gpu_check: error: {e}", file=sys.stderr)
            return 2
        print("\n".join(environment_lines(ctx.env)), flush=True)
        _preload()
        results = run_checks(ctx, checks, selected)
        sections: dict[str, dict] = {}
        for check in checks:
            sections.setdefault(check.section, {})[check.name] = results[check.key]
        report = {
            "command": " ".join(["python", "scripts/gpu_check.py", *argv]),
            "started": started_at,
            "wall_s": round(time.perf_counter() - started, 1), "budget_s": args.budget, "tiny": args.tiny,
            "device": ctx.device, "environment": ctx.env, "wheels": wheels,
            "targets": [] if args.tiny else targets(sections), "training_ratios": training_ratios(sections),
            "sections": sections, "failures": failures(sections),
        }
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        text = markdown(report)
        (out / "gpu_check.md").write_text(text)
        merge_logs(ctx.logs, out / LOG_FILE)
        print("\n" + text + f"\nwrote gpu_check.json, gpu_check.md and {LOG_FILE} in {out}", flush=True)
        return 1 if report["failures"] else 0
    finally:
        if args.keep_work:
            print(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
