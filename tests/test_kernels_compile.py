"""The Triton kernels compile for Hopper (sm_90) and Ampere (sm_80), checked without a GPU.

The interpreter tests check the kernels' arithmetic, not that Triton's compiler accepts them (the
interpreter runs plain numpy and forgives, e.g., layouts that cannot be lowered). Triton compiles
ahead of time for a named target with its bundled ptxas, no GPU needed. One configuration per
kernel and path (dtype, masked or not), with the specialisation a launch would get (unit stride on
the last axis, 16-byte-aligned pointers); the shared memory must fit the target.
Runs in a subprocess: the interpreter test module sets TRITON_INTERPRET=1 in the pytest process.
Run this file directly (python tests/test_kernels_compile.py) to print the resource usage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_LIMIT = {90: 232448, 80: 166912}  # bytes of shared memory one block may use

TYPES = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}


def _specs():
    """(name, kernel, pointer types, float args, constexprs, arch, num_warps, num_stages, strides % 16 == 0)."""
    from vqi2i_kernels import triton_attention as attn
    from vqi2i_kernels import triton_decode as dec
    from vqi2i_kernels import triton_lookup as look

    specs = []
    for dtype, arch, cfg, cosine, d in (
        ("bf16", 90, look.HOPPER_CONFIGS[0], False, 256),
        ("fp32", 90, look.HOPPER_FP32_CONFIGS[0], False, 256),
        ("fp16", 80, look.DEFAULT_CONFIGS[0], True, 40),
    ):
        ptrs = {"z_ptr": dtype, "e_ptr": dtype, "e_aux_ptr": "fp32", "out_d_ptr": "fp32", "out_i_ptr": "i64"}
        const = {"COSINE": cosine, "EVEN_D": d % cfg.kwargs["BLOCK_D"] == 0, "UPCAST": False,
                 "PRECISION": "tf32x3" if dtype == "fp32" else "tf32", "stride_zd": 1, "stride_ed": 1, **cfg.kwargs}
        specs.append((f"lookup-{dtype}-sm{arch}", look._lookup_kernel, ptrs, (), const, arch, cfg.num_warps,
                      cfg.num_stages, d % 16 == 0))

    names = ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV")
    for kind, fn, dtype, arch, cfg, causal, dh in (
        ("fwd", attn._fwd_kernel, "bf16", 90, attn.HOPPER["fwd"][0], True, 64),
        ("fwd", attn._fwd_kernel, "fp32", 90, attn.HOPPER_FP32["fwd"][0], False, 24),
        ("dkdv", attn._bwd_dkdv_kernel, "bf16", 90, attn.HOPPER["bwd"][0], True, 64),
        ("dq", attn._bwd_dq_kernel, "bf16", 90, attn.HOPPER["bwd"][0], True, 64),
        ("fwd", attn._fwd_kernel, "fp16", 80, attn.DEFAULT["fwd"][0], True, 64),
    ):
        block_dh = max(16, 1 << (dh - 1).bit_length())
        ptrs = {n: dtype for n in names} | {"LSE": "fp32", "DELTA": "fp32"}
        const = {"HEAD_DIM": dh, "CAUSAL": causal, "EVEN_DH": dh == block_dh, "UPCAST": False,
                 "PRECISION": "tf32x3" if dtype == "fp32" else "tf32", "BLOCK_DH": block_dh, **cfg.kwargs}
        const |= {s: 1 for s in ("stride_qd", "stride_kd", "stride_vd", "stride_od") if s in fn.arg_names}
        specs.append((f"attention-{kind}-{dtype}-sm{arch}", fn, ptrs, ("qk_scale", "sm_scale"), const, arch,
                      cfg.num_warps, cfg.num_stages, dh % 16 == 0))

    ptrs = {"Q": "bf16", "K": "bf16", "V": "bf16", "O": "bf16", "LENS": "i64",
            "PART_M": "fp32", "PART_L": "fp32", "PART_ACC": "fp32"}
    for split in (True, False):
        const = {"HEAD_DIM": 64, "SPLIT": split, "EVEN_DH": True, "BLOCK_N": 128, "BLOCK_DH": 64,
                 "stride_qd": 1, "stride_kd": 1, "stride_vd": 1}
        specs.append((f"decode-split={split}-bf16-sm90", dec._decode_split_kernel, ptrs, ("qk_scale",), const, 90,
                      8, 3, True))
    specs.append(("decode-merge-bf16-sm90", dec._decode_merge_kernel, ptrs, (),
                  {"HEAD_DIM": 64, "BLOCK_S": 16, "BLOCK_DH": 64}, 90, 4, 1, True))
    return specs


def _compile_all() -> list[dict]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    results = []
    for name, fn, ptrs, floats, const, arch, warps, stages, aligned in _specs():
        signature, attrs = {}, {}
        for i, arg in enumerate(fn.arg_names):
            if arg in const:
                signature[arg] = "constexpr"
            elif arg in ptrs:
                signature[arg] = "*" + TYPES.get(ptrs[arg], ptrs[arg])
                attrs[(i,)] = [["tt.divisibility", 16]]
            elif arg in floats:
                signature[arg] = "fp32"
            else:
                signature[arg] = "i32"
                if arg.startswith("stride") and aligned:  # a launch marks multiples of 16 so
                    attrs[(i,)] = [["tt.divisibility", 16]]
        try:
            src = ASTSource(fn, signature, constexprs=const, attrs=attrs)
            kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                    options={"num_warps": warps, "num_stages": stages})
            results.append({"name": name, "ok": True, "shared": kernel.metadata.shared, "arch": arch})
        except Exception as e:  # noqa: BLE001 - reported per kernel, the test fails on it
            results.append({"name": name, "ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "arch": arch})
    return results


def test_kernels_compile_for_hopper_and_ampere():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, __file__], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(set(r["name"] for r in results)) >= 10
    failed = [f"{r['name']}: {r['error']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
    too_big = [f"{r['name']}: {r['shared']} B" for r in results if r["shared"] > SHARED_LIMIT[r["arch"]]]
    assert not too_big, too_big


if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_compile_all()))
