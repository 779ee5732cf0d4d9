"""Flash-decoding: one new query per sequence against its KV cache, split over the cache length.

A decode step has B x H queries of one row each, too few programs to fill a GPU when the cache is
long; so each (sequence, head) cache is cut into splits handled by separate programs that each keep
an online-softmax partial (max, sum, weighted values), and a second small kernel merges them.
Caches are ragged: sequence b uses its first lengths[b] slots (lengths >= 1).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .triton_common import INTERPRETED, SUPPORTED_DTYPES, check_runnable, device_guard, is_hopper

LOG2E = 1.4426950408889634


@triton.jit
def _decode_split_kernel(
    Q, K, V, LENS, O, PART_M, PART_L, PART_ACC, qk_scale,
    stride_qb, stride_qh, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    H, TMAX, chunk, n_splits,
    HEAD_DIM: tl.constexpr, SPLIT: tl.constexpr, EVEN_DH: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_DH: tl.constexpr,
):
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    length = tl.minimum(tl.load(LENS + b).to(tl.int32), TMAX)
    start = split * chunk
    end = tl.minimum(start + chunk, length)

    offs_d = tl.arange(0, BLOCK_DH)
    d_ok = offs_d < HEAD_DIM
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_d * stride_qd, mask=d_ok, other=0.0)
    q = q.to(tl.float32) * qk_scale
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh

    m_i = tl.max(tl.full([BLOCK_N], float("-inf"), dtype=tl.float32), axis=0)
    l_i = tl.sum(tl.zeros([BLOCK_N], dtype=tl.float32), axis=0)
    acc = tl.zeros([BLOCK_DH], dtype=tl.float32)
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        ok = cols < end
        slot = tl.minimum(cols, end - 1)
        k_ptrs = k_base + slot[:, None] * stride_kt + offs_d[None, :] * stride_kd
        v_ptrs = v_base + slot[:, None] * stride_vt + offs_d[None, :] * stride_vd
        if EVEN_DH:  # no mask along the contiguous axis: vectorised loads
            k = tl.load(k_ptrs)
            v = tl.load(v_ptrs)
        else:
            k = tl.load(k_ptrs, mask=d_ok[None, :], other=0.0)
            v = tl.load(v_ptrs, mask=d_ok[None, :], other=0.0)
        s = tl.sum(k.to(tl.float32) * q[None, :], axis=1)
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=0))  # finite: slot n0 < end is always valid
        p = tl.exp2(s - m_new)
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        acc = acc * alpha + tl.sum(p[:, None] * v.to(tl.float32), axis=0)
        m_i = m_new

    if SPLIT:
        part = bh * n_splits + split
        tl.store(PART_M + part, m_i)
        tl.store(PART_L + part, l_i)
        tl.store(PART_ACC + part.to(tl.int64) * BLOCK_DH + offs_d, acc)
    else:
        tl.store(O + bh.to(tl.int64) * HEAD_DIM + offs_d, (acc / l_i).to(O.dtype.element_ty), mask=d_ok)


@triton.jit
def _decode_merge_kernel(
    PART_M, PART_L, PART_ACC, O, n_splits,
    HEAD_DIM: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_DH: tl.constexpr,
):
    """Merge the per-split partials of one (sequence, head); empty splits carry m = -inf, weight 0."""
    bh = tl.program_id(0)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_DH)
    s_ok = offs_s < n_splits
    part = bh * n_splits + offs_s
    m = tl.load(PART_M + part, mask=s_ok, other=float("-inf"))
    l = tl.load(PART_L + part, mask=s_ok, other=0.0)
    acc = tl.load(PART_ACC + part.to(tl.int64)[:, None] * BLOCK_DH + offs_d[None, :], mask=s_ok[:, None], other=0.0)
    m_all = tl.max(m, axis=0)
    w = tl.exp2(m - m_all)
    out = tl.sum(w[:, None] * acc, axis=0) / tl.sum(w * l, axis=0)
    tl.store(O + bh.to(tl.int64) * HEAD_DIM + offs_d, out.to(O.dtype.element_ty), mask=offs_d < HEAD_DIM)


def _block_n(device: torch.device, dh: int) -> tuple[int, int]:
    """(BLOCK_N, num_warps): decode is bandwidth-bound; Hopper takes bigger tiles in flight."""
    if INTERPRETED:
        return 16, 1
    if dh > 128:
        return 32, 4
    return (128, 8) if is_hopper(device) else (64, 4)


def _num_splits(bh: int, tmax: int, block_n: int, device: torch.device) -> int:
    """Enough programs for about two waves over the SMs, each split at least a few tiles long."""
    if device.type != "cuda":
        return max(1, triton.cdiv(tmax, 4 * block_n))  # interpreter: exercise the split path
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    by_length = triton.cdiv(tmax, 4 * block_n)
    return max(1, min(by_length, triton.cdiv(2 * sms, bh), 128))


def check_decode_inputs(q, k_cache, v_cache, lengths) -> str | None:
    """None if the Triton kernel takes these inputs, else why not."""
    if q.dim() != 3 or k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        return "need q [B, H, Dh] and caches [B, H, Tmax, Dh]"
    if k_cache.shape[:2] != q.shape[:2] or k_cache.shape[3] != q.shape[2]:
        return f"q {tuple(q.shape)} does not match the cache {tuple(k_cache.shape)}"
    if lengths.shape != (q.shape[0],) or lengths.dtype not in (torch.int32, torch.int64):
        return f"lengths must be an int tensor [B], got {tuple(lengths.shape)} {lengths.dtype}"
    if not (q.dtype == k_cache.dtype == v_cache.dtype) or q.dtype not in SUPPORTED_DTYPES:
        return f"q and the caches must share one dtype of fp32/fp16/bf16: {q.dtype}, {k_cache.dtype}"
    if not (q.device == k_cache.device == v_cache.device == lengths.device):
        return "q, caches and lengths are on different devices"
    if q.shape[2] > 256:
        return f"head dim {q.shape[2]} > 256"
    if k_cache.shape[2] == 0:
        return "empty cache"
    return None


def decode_attention_triton(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor,
    *, splits: int | None = None,
) -> torch.Tensor:
    """q [B, H, Dh] against caches [B, H, Tmax, Dh] valid up to lengths [B] (>= 1) -> [B, H, Dh]."""
    why = check_decode_inputs(q, k_cache, v_cache, lengths)
    if why:
        raise ValueError(why)
    check_runnable(q)
    b, h, dh = q.shape
    tmax = k_cache.shape[2]
    out = torch.empty((b, h, dh), dtype=q.dtype, device=q.device)
    if out.numel() == 0:
        return out
    block_n, warps = _block_n(q.device, dh)
    block_dh = triton.next_power_of_2(dh)
    n_splits = splits or _num_splits(b * h, tmax, block_n, q.device)
    chunk = triton.cdiv(triton.cdiv(tmax, n_splits), block_n) * block_n
    n_splits = triton.cdiv(tmax, chunk)
    split = n_splits > 1
    if split:
        part_m = torch.empty(b * h * n_splits, dtype=torch.float32, device=q.device)
        part_l = torch.empty_like(part_m)
        part_acc = torch.empty(b * h * n_splits, block_dh, dtype=torch.float32, device=q.device)
    else:
        part_m = part_l = part_acc = out  # unused
    with device_guard(q):
        _decode_split_kernel[(b * h, n_splits)](
            q, k_cache, v_cache, lengths, out, part_m, part_l, part_acc, LOG2E / math.sqrt(dh),
            *q.stride(), *k_cache.stride(), *v_cache.stride(), h, tmax, chunk, n_splits,
            HEAD_DIM=dh, SPLIT=split, EVEN_DH=dh == block_dh, BLOCK_N=block_n, BLOCK_DH=block_dh, num_warps=warps,
        )
        if split:
            _decode_merge_kernel[(b * h,)](
                part_m, part_l, part_acc, out, n_splits,
                HEAD_DIM=dh, BLOCK_S=triton.next_power_of_2(n_splits), BLOCK_DH=block_dh,
                num_warps=1 if INTERPRETED else 4,
            )
    return out
