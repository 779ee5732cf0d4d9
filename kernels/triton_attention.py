"""Flash attention for training and prefill: online softmax over K/V tiles, exact Triton backward.

Layout [B, H, T, Dh] with any strides; softmax scale 1/sqrt(Dh) as in SDPA. Causal masks are
aligned to the end: query i sees keys j <= i + (Tk - Tq), which is what a prefill chunk after a
KV cache needs. The forward keeps the row log-sum-exp so that the backward can rebuild each
probability tile exactly instead of storing the T x T matrix (the FlashAttention-2 scheme: one
kernel for dK/dV walking the queries, one for dQ walking the keys).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

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

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 256


@triton.jit
def _load_rows(base, rows, stride_t, stride_d, offs_d, HEAD_DIM: tl.constexpr, EVEN_DH: tl.constexpr):
    """A [len(rows), BLOCK_DH] tile; rows must already be clamped into range."""
    ptrs = base + rows[:, None] * stride_t + offs_d[None, :] * stride_d
    if EVEN_DH:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0.0)


@triton.jit
def _load_cols(base, cols, stride_t, stride_d, offs_d, HEAD_DIM: tl.constexpr, EVEN_DH: tl.constexpr):
    """The transposed tile [BLOCK_DH, len(cols)]."""
    ptrs = base + cols[None, :] * stride_t + offs_d[:, None] * stride_d
    if EVEN_DH:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=(offs_d < HEAD_DIM)[:, None], other=0.0)


@triton.jit
def _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
               start, end, rows, TK, offset, qk_scale,
               MASKED: tl.constexpr, CAUSAL: tl.constexpr, HEAD_DIM: tl.constexpr, EVEN_DH: tl.constexpr,
               UPCAST: tl.constexpr, PRECISION: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DH: tl.constexpr):
    """Fold key tiles [start, end) into the running (acc, l, m); MASKED tiles apply the causal/length mask."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_DH)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + offs_n
        kv = tl.minimum(cols, TK - 1)
        kt = _load_cols(k_base, kv, stride_kt, stride_kd, offs_d, HEAD_DIM, EVEN_DH)
        s = dot(q, kt, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), UPCAST, PRECISION) * qk_scale
        if MASKED:
            ok = (cols < TK)[None, :]
            if CAUSAL:
                ok = ok & (cols[None, :] <= rows[:, None] + offset)
            s = tl.where(ok, s, float("-inf"))
        # every row's first tile holds key 0, which every row sees: m_new is finite from the start
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = _load_rows(v_base, kv, stride_vt, stride_vd, offs_d, HEAD_DIM, EVEN_DH)
        acc = dot(p.to(v.dtype), v, acc * alpha[:, None], UPCAST, PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE, qk_scale,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    H, TQ, TK, T_BUCKET,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, EVEN_DH: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DH: tl.constexpr,
):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    q_base = Q + b * stride_qb + h * stride_qh
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh

    m0 = pid_m * BLOCK_M
    rows = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_DH)
    q = _load_rows(q_base, tl.minimum(rows, TQ - 1), stride_qt, stride_qd, offs_d, HEAD_DIM, EVEN_DH)

    offset = TK - TQ
    if CAUSAL:
        hi = tl.minimum(TK, m0 + BLOCK_M + offset)  # keys any row of this tile can see
        full = tl.minimum(TK, m0 + offset + 1) // BLOCK_N * BLOCK_N  # keys every row sees
    else:
        hi = TK
        full = TK // BLOCK_N * BLOCK_N
    acc = tl.zeros([BLOCK_M, BLOCK_DH], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
                               0, full, rows, TK, offset, qk_scale, False, CAUSAL, HEAD_DIM, EVEN_DH,
                               UPCAST, PRECISION, BLOCK_M, BLOCK_N, BLOCK_DH)
    acc, l_i, m_i = _fwd_tiles(acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
                               full, hi, rows, TK, offset, qk_scale, True, CAUSAL, HEAD_DIM, EVEN_DH,
                               UPCAST, PRECISION, BLOCK_M, BLOCK_N, BLOCK_DH)
    out = acc / l_i[:, None]
    row_ok = rows < TQ
    o_ptrs = O + (bh.to(tl.int64) * TQ + rows[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=row_ok[:, None] & (offs_d < HEAD_DIM)[None, :])
    tl.store(LSE + bh.to(tl.int64) * TQ + rows, m_i + tl.log2(l_i), mask=row_ok)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, qk_scale, sm_scale,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    H, TQ, TK, T_BUCKET,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, EVEN_DH: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DH: tl.constexpr,
):
    """dK, dV for one tile of keys, walking the query tiles that can see it."""
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_ob + h * stride_oh
    n0 = pid_n * BLOCK_N
    cols = n0 + tl.arange(0, BLOCK_N)
    col_ok = cols < TK
    kv = tl.minimum(cols, TK - 1)
    offs_d = tl.arange(0, BLOCK_DH)
    k = _load_rows(K + b * stride_kb + h * stride_kh, kv, stride_kt, stride_kd, offs_d, HEAD_DIM, EVEN_DH)
    v = _load_rows(V + b * stride_vb + h * stride_vh, kv, stride_vt, stride_vd, offs_d, HEAD_DIM, EVEN_DH)
    dk = tl.zeros([BLOCK_N, BLOCK_DH], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_DH], dtype=tl.float32)

    offset = TK - TQ
    start = 0
    if CAUSAL:
        start = tl.maximum(n0 - offset, 0) // BLOCK_M * BLOCK_M  # first query that sees key n0
    for m0 in range(start, TQ, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < TQ
        qr = tl.minimum(rows, TQ - 1)
        q = _load_rows(q_base, qr, stride_qt, stride_qd, offs_d, HEAD_DIM, EVEN_DH)
        do = _load_rows(do_base, qr, stride_ot, stride_od, offs_d, HEAD_DIM, EVEN_DH)
        lse = tl.load(LSE + bh.to(tl.int64) * TQ + qr)
        delta = tl.load(DELTA + bh.to(tl.int64) * TQ + qr)
        st = dot(k, tl.trans(q), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32), UPCAST, PRECISION) * qk_scale
        ok = col_ok[:, None] & row_ok[None, :]
        if CAUSAL:
            ok = ok & (cols[:, None] <= rows[None, :] + offset)
        pt = tl.where(ok, tl.exp2(st - lse[None, :]), 0.0)
        dv = dot(pt.to(do.dtype), do, dv, UPCAST, PRECISION)
        dpt = dot(v, tl.trans(do), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32), UPCAST, PRECISION)
        dst = pt * (dpt - delta[None, :])
        dk = dot(dst.to(q.dtype), q, dk, UPCAST, PRECISION)

    out = (bh.to(tl.int64) * TK + cols[:, None]) * HEAD_DIM + offs_d[None, :]
    mask = col_ok[:, None] & (offs_d < HEAD_DIM)[None, :]
    tl.store(DK + out, (dk * sm_scale).to(DK.dtype.element_ty), mask=mask)
    tl.store(DV + out, dv.to(DV.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, qk_scale, sm_scale,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    H, TQ, TK, T_BUCKET,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, EVEN_DH: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DH: tl.constexpr,
):
    """dQ for one tile of queries, walking the key tiles it can see."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    m0 = pid_m * BLOCK_M
    rows = m0 + tl.arange(0, BLOCK_M)
    row_ok = rows < TQ
    qr = tl.minimum(rows, TQ - 1)
    offs_d = tl.arange(0, BLOCK_DH)
    q = _load_rows(Q + b * stride_qb + h * stride_qh, qr, stride_qt, stride_qd, offs_d, HEAD_DIM, EVEN_DH)
    do = _load_rows(DO + b * stride_ob + h * stride_oh, qr, stride_ot, stride_od, offs_d, HEAD_DIM, EVEN_DH)
    lse = tl.load(LSE + bh.to(tl.int64) * TQ + qr)
    delta = tl.load(DELTA + bh.to(tl.int64) * TQ + qr)
    dq = tl.zeros([BLOCK_M, BLOCK_DH], dtype=tl.float32)

    offset = TK - TQ
    hi = TK
    if CAUSAL:
        hi = tl.minimum(TK, m0 + BLOCK_M + offset)
    offs_n = tl.arange(0, BLOCK_N)
    for n0 in range(0, hi, BLOCK_N):
        cols = n0 + offs_n
        kv = tl.minimum(cols, TK - 1)
        kt = _load_cols(k_base, kv, stride_kt, stride_kd, offs_d, HEAD_DIM, EVEN_DH)
        vt = _load_cols(v_base, kv, stride_vt, stride_vd, offs_d, HEAD_DIM, EVEN_DH)
        s = dot(q, kt, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), UPCAST, PRECISION) * qk_scale
        ok = (cols < TK)[None, :]
        if CAUSAL:
            ok = ok & (cols[None, :] <= rows[:, None] + offset)
        p = tl.where(ok, tl.exp2(s - lse[:, None]), 0.0)
        dp = dot(do, vt, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), UPCAST, PRECISION)
        ds = p * (dp - delta[:, None])
        dq = dot(ds.to(kt.dtype), tl.trans(kt), dq, UPCAST, PRECISION)

    out = (bh.to(tl.int64) * TQ + rows[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DQ + out, (dq * sm_scale).to(DQ.dtype.element_ty), mask=row_ok[:, None] & (offs_d < HEAD_DIM)[None, :])


def _cfg(bm, bn, warps, stages):
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)


# Hopper (H100/H200): 128-row query tiles (two warpgroups at 8 warps), 3-4 stage K/V pipelines
HOPPER = {
    "fwd": [_cfg(128, 64, 4, 3), _cfg(128, 128, 8, 3), _cfg(128, 64, 8, 4), _cfg(64, 64, 4, 3)],
    "bwd": [_cfg(64, 128, 8, 3), _cfg(64, 64, 4, 3), _cfg(128, 64, 8, 3)],
}
# fp32 operands (3 x tf32 products) need twice the bytes and more registers: smaller tiles
HOPPER_FP32 = {
    "fwd": [_cfg(64, 64, 4, 3), _cfg(128, 64, 8, 3), _cfg(64, 32, 4, 3)],
    "bwd": [_cfg(64, 64, 4, 2), _cfg(32, 64, 4, 2), _cfg(64, 32, 4, 2)],
}
# elsewhere: tiles that fit ~100 KB of shared memory
DEFAULT = {
    "fwd": [_cfg(64, 64, 4, 2), _cfg(128, 64, 4, 3), _cfg(64, 32, 4, 3)],
    "bwd": [_cfg(64, 64, 4, 2), _cfg(32, 64, 4, 2), _cfg(32, 32, 4, 2)],
}
# interpreter: small and unequal tiles, so that test shapes cross tile edges in both directions
INTERPRETER_FWD = {"BLOCK_M": 32, "BLOCK_N": 16}
INTERPRETER_BWD = {"BLOCK_M": 16, "BLOCK_N": 32}

_KEY = ["T_BUCKET", "HEAD_DIM", "CAUSAL"]
_even = triton.heuristics({"EVEN_DH": lambda a: a["HEAD_DIM"] == a["BLOCK_DH"]})
_PLAIN = {"fwd": _even(_fwd_kernel), "dkdv": _even(_bwd_dkdv_kernel), "dq": _even(_bwd_dq_kernel)}
_tuned: dict = {}


def _tuned_kernel(kind: str, device: torch.device, dtype: torch.dtype):
    """The autotuned `kind` kernel with the config list for this GPU generation and dtype."""
    table = (HOPPER_FP32 if dtype == torch.float32 else HOPPER) if is_hopper(device) else DEFAULT
    configs = table["fwd" if kind == "fwd" else "bwd"]
    key = (kind, id(configs))
    if key not in _tuned:
        _tuned[key] = triton.autotune(configs, key=_KEY)(_PLAIN[kind])
    return _tuned[key]


def _run(kind: str, grid_dim: str, t_len: int, bh: int, args, flags, config):
    """Launch `kind` with an explicit config (tests, interpreter) or the autotuned one for this GPU."""
    if config is None and INTERPRETED:
        config = INTERPRETER_FWD if kind == "fwd" else INTERPRETER_BWD
    if config is not None:
        _PLAIN[kind][(triton.cdiv(t_len, config[grid_dim]), bh)](*args, **flags, **config)
    else:
        kernel = _tuned_kernel(kind, args[0].device, args[0].dtype)
        kernel[lambda meta: (triton.cdiv(t_len, meta[grid_dim]), bh)](*args, **flags)


def _flags(q: torch.Tensor, causal: bool) -> dict:
    dh = q.shape[-1]
    return {
        "HEAD_DIM": dh, "CAUSAL": causal, "UPCAST": upcast_dot(q.dtype), "PRECISION": dot_precision(q.dtype),
        "BLOCK_DH": max(16, triton.next_power_of_2(dh)),
    }


def _strides(*ts):
    return [s for t in ts for s in t.stride()]


def _bucket(tq: int, tk: int) -> int:
    return triton.next_power_of_2(max(tq, tk))


def attention_forward(q, k, v, causal: bool, config: dict | None = None):
    """-> (out [B, H, Tq, Dh] contiguous, lse [B, H, Tq] fp32 in log2 units)."""
    b, h, tq, dh = q.shape
    tk = k.shape[2]
    out = torch.empty((b, h, tq, dh), dtype=q.dtype, device=q.device)
    lse = torch.empty((b, h, tq), dtype=torch.float32, device=q.device)
    if out.numel() == 0:
        lse.fill_(float("-inf"))
        return out, lse
    qk_scale = LOG2E / math.sqrt(dh)
    args = (q, k, v, out, lse, qk_scale, *_strides(q, k, v), h, tq, tk, _bucket(tq, tk))
    with device_guard(q):
        _run("fwd", "BLOCK_M", tq, b * h, args, _flags(q, causal), config)
    return out, lse


def attention_backward(do, q, k, v, out, lse, causal: bool, config: dict | None = None):
    """-> (dq, dk, dv) for out = attention(q, k, v)."""
    b, h, tq, dh = q.shape
    tk = k.shape[2]
    dq = torch.empty((b, h, tq, dh), dtype=q.dtype, device=q.device)
    dk = torch.empty((b, h, tk, dh), dtype=k.dtype, device=k.device)
    dv = torch.empty((b, h, tk, dh), dtype=v.dtype, device=v.device)
    if dq.numel() == 0:
        return dq, dk.zero_(), dv.zero_()
    delta = (do.float() * out.float()).sum(-1)  # rowsum(dO * O) = rowsum(P * dP)
    sm_scale = 1.0 / math.sqrt(dh)
    flags = _flags(q, causal)
    common = (lse, delta)
    strides = (*_strides(q, k, v, do), h, tq, tk, _bucket(tq, tk))
    with device_guard(q):
        _run("dkdv", "BLOCK_N", tk, b * h, (q, k, v, do, *common, dk, dv, sm_scale * LOG2E, sm_scale, *strides),
             flags, config)
        _run("dq", "BLOCK_M", tq, b * h, (q, k, v, do, *common, dq, sm_scale * LOG2E, sm_scale, *strides),
             flags, config)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, config):
        out, lse = attention_forward(q, k, v, causal, config)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.config = causal, config
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = attention_backward(do, q, k, v, out, lse, ctx.causal, ctx.config)
        return dq, dk, dv, None, None


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> str | None:
    """None if the Triton kernel takes these inputs, else why not."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "q, k, v must be [B, H, T, Dh]"
    if q.shape[:2] != k.shape[:2] or k.shape != v.shape or q.shape[3] != k.shape[3]:
        return f"shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in SUPPORTED_DTYPES:
        return f"q, k, v must share one dtype of fp32/fp16/bf16, got {q.dtype}, {k.dtype}, {v.dtype}"
    if not (q.device == k.device == v.device):
        return "q, k, v are on different devices"
    if q.shape[3] > MAX_HEAD_DIM:
        return f"head dim {q.shape[3]} > {MAX_HEAD_DIM}"
    if k.shape[2] == 0 and q.shape[2] > 0:
        return "no keys"
    return None


def attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True, config: dict | None = None
) -> torch.Tensor:
    """Differentiable flash attention: q [B, H, Tq, Dh], k/v [B, H, Tk, Dh] -> [B, H, Tq, Dh].

    `config` (BLOCK_M/BLOCK_N, optional num_warps/num_stages) bypasses autotuning, for tests.
    """
    why = check_attention_inputs(q, k, v, causal)
    if why:
        raise ValueError(why)
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"causal attention needs Tq <= Tk (masks align to the end), got {q.shape[2]} > {k.shape[2]}")
    check_runnable(q)
    return _FlashAttention.apply(q, k, v, causal, config)
