"""Fused nearest-code search: distances by `tl.dot`, a running min/argmin, no N x K matrix.

Each program owns BLOCK_N rows of z and walks its share of the codebook in BLOCK_K tiles; a tile's
distances live only in registers. When N is small the codebook is split over programs (split-K, like
flash-decoding) and the per-split winners are merged in torch; ties go to the lowest index everywhere.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_common import (
    INTERPRETED,
    SUPPORTED_DTYPES,
    check_runnable,
    device_guard,
    dot,
    dot_precision,
    is_hopper,
    upcast_dot,
)


@triton.jit
def _lookup_kernel(
    z_ptr, e_ptr, e_aux_ptr, out_d_ptr, out_i_ptr,
    N, K, D, k_per_split,
    stride_zn, stride_zd, stride_ek, stride_ed,
    COSINE: tl.constexpr, EVEN_D: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_n = tl.program_id(0)
    split = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    # rows past N read row N-1 instead of being masked (their results are never stored): unmasked
    # loads along the contiguous D axis keep the loads vectorised and pipelined
    z_rows = z_ptr + tl.minimum(rows, N - 1)[:, None] * stride_zn
    cols_d = tl.arange(0, BLOCK_D)

    # |z|^2 per row (fp32): the l2 distance's constant term, or the cosine normaliser
    z_sq = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + cols_d
        if EVEN_D:
            zt = tl.load(z_rows + dd[None, :] * stride_zd)
        else:
            zt = tl.load(z_rows + dd[None, :] * stride_zd, mask=(dd < D)[None, :], other=0.0)
        zt = zt.to(tl.float32)
        z_sq += tl.sum(zt * zt, axis=1)
    inv_z = 1.0 / tl.maximum(tl.sqrt(z_sq), 1e-12)

    best_d = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
    best_i = tl.zeros([BLOCK_N], dtype=tl.int32)
    k_start = split * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    for k0 in range(k_start, k_end, BLOCK_K):
        codes = k0 + tl.arange(0, BLOCK_K)
        code_ok = codes < k_end
        e_cols = e_ptr + tl.minimum(codes, K - 1)[None, :] * stride_ek
        acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + cols_d
            if EVEN_D:
                zt = tl.load(z_rows + dd[None, :] * stride_zd)
                et = tl.load(e_cols + dd[:, None] * stride_ed)  # [BLOCK_D, BLOCK_K]
            else:
                zt = tl.load(z_rows + dd[None, :] * stride_zd, mask=(dd < D)[None, :], other=0.0)
                et = tl.load(e_cols + dd[:, None] * stride_ed, mask=(dd < D)[:, None], other=0.0)
            acc = dot(zt, et, acc, UPCAST, PRECISION)
        aux = tl.load(e_aux_ptr + codes, mask=code_ok, other=0.0)
        if COSINE:  # aux = 1 / |e|
            dist = 1.0 - acc * inv_z[:, None] * aux[None, :]
        else:  # aux = |e|^2; same order of operations as z^2 + e^2 - 2 z.e
            dist = z_sq[:, None] + aux[None, :] - 2.0 * acc
        dist = tl.where(code_ok[None, :], dist, float("inf"))
        tile_d, tile_i = tl.min(dist, axis=1, return_indices=True, return_indices_tie_break_left=True)
        better = tile_d < best_d  # strict: an earlier tile keeps its (lower) index on a tie
        best_d = tl.where(better, tile_d, best_d)
        best_i = tl.where(better, k0 + tile_i, best_i)

    out = split * N + rows
    tl.store(out_d_ptr + out, best_d, mask=row_ok)
    tl.store(out_i_ptr + out, best_i.to(tl.int64), mask=row_ok)


def _cfg(bn, bk, bd, warps, stages):
    return triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_D": bd}, num_warps=warps, num_stages=stages)


# Hopper (H100/H200): 128-row tiles for wgmma, deeper pipelines (up to 227 KB shared memory per block)
HOPPER_CONFIGS = [
    _cfg(128, 128, 64, 8, 3),
    _cfg(128, 128, 32, 8, 4),
    _cfg(128, 64, 64, 4, 4),
    _cfg(64, 128, 64, 4, 3),
]
# fp32 operands (3 x tf32 products) need twice the bytes and more registers: thinner D slices
HOPPER_FP32_CONFIGS = [
    _cfg(128, 64, 32, 4, 3),
    _cfg(128, 128, 32, 8, 4),
    _cfg(64, 128, 32, 4, 3),
]
# elsewhere (Ampere, Ada, consumer GPUs): smaller tiles that fit ~100 KB of shared memory
DEFAULT_CONFIGS = [
    _cfg(64, 64, 32, 4, 2),
    _cfg(128, 64, 32, 4, 3),
    _cfg(64, 128, 32, 4, 3),
]
# interpreter: small tiles, so that small test shapes still cross tile edges
INTERPRETER_CONFIG = {"BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_D": 16}

_lookup = triton.heuristics({"EVEN_D": lambda a: a["D"] % a["BLOCK_D"] == 0})(_lookup_kernel)
_KEY = ["K", "D", "k_per_split", "COSINE"]
_tuned: dict = {}


def _tuned_kernel(device: torch.device, dtype: torch.dtype):
    """The autotuned kernel with the config list for this GPU generation and dtype."""
    if is_hopper(device):
        which = "hopper_fp32" if dtype == torch.float32 else "hopper"
    else:
        which = "default"
    if which not in _tuned:
        configs = {"hopper": HOPPER_CONFIGS, "hopper_fp32": HOPPER_FP32_CONFIGS, "default": DEFAULT_CONFIGS}[which]
        _tuned[which] = triton.autotune(configs, key=_KEY)(_lookup)
    return _tuned[which]


_SPLIT_ALIGN = 128  # split boundaries on a multiple of every autotuned BLOCK_K
_MAX_ELEMS = 2**31 - 1  # offsets are int32 inside the kernel


def _num_splits(n: int, k: int, device: torch.device) -> int:
    """Split the codebook over programs when the row tiles alone would leave SMs idle."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    row_tiles = triton.cdiv(n, 128)
    return max(1, min(triton.cdiv(k, _SPLIT_ALIGN), (2 * sms) // row_tiles))


def codebook_lookup_triton(
    z: torch.Tensor,
    codebook: torch.Tensor,
    *,
    metric: str = "l2",
    config: dict | None = None,
    splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code per row: z [N, D], codebook [K, D] -> (indices [N] int64, distances [N] fp32).

    l2 distances are squared euclidean, cosine distances 1 - cos; ties go to the lowest index.
    `config` (BLOCK_N/BLOCK_K/BLOCK_D, optional num_warps/num_stages) bypasses autotuning and
    `splits` fixes the number of codebook splits; both exist for tests and benchmarks.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; use 'l2' or 'cosine'")
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(f"need z [N, D] and codebook [K, D]: {tuple(z.shape)}, {tuple(codebook.shape)}")
    if z.dtype not in SUPPORTED_DTYPES or codebook.dtype != z.dtype:
        raise TypeError(f"z and codebook must share one dtype of fp32/fp16/bf16: {z.dtype}, {codebook.dtype}")
    if z.device != codebook.device:
        raise ValueError(f"z is on {z.device} but the codebook is on {codebook.device}")
    check_runnable(z)
    n, d = z.shape
    k = codebook.shape[0]
    if k == 0 or d == 0:
        raise ValueError(f"empty codebook or zero-width vectors: K={k}, D={d}")
    if codebook.stride(0) * (k - 1) + codebook.stride(1) * (d - 1) >= _MAX_ELEMS:
        raise ValueError(f"codebook of {k} x {d} is too large for int32 offsets")
    idx = torch.empty(n, dtype=torch.long, device=z.device)
    dist = torch.empty(n, dtype=torch.float32, device=z.device)
    if n == 0:
        return idx, dist

    e32 = codebook.float()
    e_aux = 1.0 / e32.norm(dim=1).clamp_min(1e-12) if metric == "cosine" else (e32 * e32).sum(1)
    if config is None and INTERPRETED:
        config = INTERPRETER_CONFIG
    # rows per launch so that every offset into z fits in int32
    rows_per_launch = max(1, _MAX_ELEMS // max(abs(z.stride(0)), 1) - 1)
    with device_guard(z):
        for s in range(0, n, rows_per_launch):
            e = min(n, s + rows_per_launch)
            _launch(z[s:e], codebook, e_aux, idx[s:e], dist[s:e], metric, config, splits)
    return idx, dist


def _launch(z, codebook, e_aux, idx, dist, metric, config, splits) -> None:
    n, d = z.shape
    k = codebook.shape[0]
    if splits is None:
        splits = 1 if not z.is_cuda else _num_splits(n, k, z.device)
    align = config["BLOCK_K"] if config is not None else _SPLIT_ALIGN
    k_per_split = triton.cdiv(triton.cdiv(k, splits), align) * align
    n_splits = triton.cdiv(k, k_per_split)
    if n_splits == 1:
        part_d, part_i = dist, idx
    else:
        part_d = torch.empty(n_splits, n, dtype=torch.float32, device=z.device)
        part_i = torch.empty(n_splits, n, dtype=torch.long, device=z.device)

    args = (z, codebook, e_aux, part_d, part_i, n, k, d, k_per_split,
            z.stride(0), z.stride(1), codebook.stride(0), codebook.stride(1))
    flags = {"COSINE": metric == "cosine", "UPCAST": upcast_dot(z.dtype), "PRECISION": dot_precision(z.dtype)}
    if config is not None:
        _lookup[(triton.cdiv(n, config["BLOCK_N"]), n_splits)](*args, **flags, **config)
    else:
        _tuned_kernel(z.device, z.dtype)[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), n_splits)](*args, **flags)

    if n_splits > 1:
        # splits cover increasing index ranges: among splits holding the minimum, the smallest index
        # wins (stated explicitly rather than relying on min's tie rule on every device)
        best = part_d.min(dim=0).values
        dist.copy_(best)
        idx.copy_(torch.where(part_d == best, part_i, k).min(dim=0).values)
