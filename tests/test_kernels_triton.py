"""The Triton kernels against the torch references: natively on CUDA, else under the interpreter.

Without a GPU this module sets TRITON_INTERPRET=1 at import, before the kernel modules are first
imported (Triton reads it when a kernel is defined; the dispatch imports the kernels lazily, and
pytest imports every test module before running any test), so the kernels are defined as
interpreted functions that run on CPU tensors. On a CPU-only machine
nothing else can run Triton code, so the setting does not change other tests. Shapes are small and
chosen to cross the interpreter's tiles (16-32) in every direction.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from test_kernels import assert_nearest, check_quantizer_against_taming, exact_distances, integer_case  # noqa: E402

import vqi2i_kernels  # noqa: E402
from vqi2i_kernels import dispatch, triton_common  # noqa: E402
from vqi2i_kernels.reference import attention_torch, codebook_lookup_torch, decode_attention_torch  # noqa: E402
from vqi2i_kernels.triton_attention import attention_triton  # noqa: E402
from vqi2i_kernels.triton_decode import decode_attention_triton  # noqa: E402
from vqi2i_kernels.triton_lookup import codebook_lookup_triton  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not triton_common.INTERPRETED:
    pytest.fail("the kernels were defined before TRITON_INTERPRET=1 could be set; run this file on its own",
                pytrace=False)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def randn(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype).to(DEVICE)


# --- codebook lookup ---------------------------------------------------------------------------

LOOKUP_SHAPES = [  # (N, K, D, splits)
    (1, 1, 7, None),  # a single token, K = 1
    (1, 37, 5, None),
    (50, 1, 20, None),
    (37, 50, 40, None),  # nothing a multiple of the tile
    (32, 64, 32, None),  # everything a multiple of the tile
    (33, 130, 24, 3),  # codebook split over programs, merged on the host
    (20, 24, 512, None),  # wide vectors: 32 slices of D
]


@pytest.mark.parametrize("n,k,d,splits", LOOKUP_SHAPES)
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_lookup_random_shapes(n, k, d, splits, metric):
    z, codebook = randn(n, d, seed=1), randn(k, d, seed=2)
    idx, dist = codebook_lookup_triton(z, codebook, metric=metric, splits=splits)
    ref_idx, _ = codebook_lookup_torch(z, codebook, metric=metric)
    assert_nearest(z, codebook, idx, dist, metric, reference_idx=ref_idx)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_lookup_half_precision_inputs(dtype, metric):
    z, codebook = randn(45, 40, dtype=dtype, seed=3), randn(70, 40, dtype=dtype, seed=4)
    idx, dist = codebook_lookup_triton(z, codebook, metric=metric, splits=2)
    ref_idx, _ = codebook_lookup_torch(z, codebook, metric=metric)
    # judged on the half-precision values themselves: the kernel accumulates them in fp32
    assert_nearest(z, codebook, idx, dist, metric, reference_idx=ref_idx)


@pytest.mark.parametrize("splits", [None, 3])
def test_lookup_exact_ties_go_to_lowest_index(splits):
    z, codebook = integer_case(60, 70, 20, seed=5)
    idx, dist = codebook_lookup_triton(z.to(DEVICE), codebook.to(DEVICE), splits=splits)
    exact = exact_distances(z, codebook, "l2")
    assert torch.equal(idx.cpu(), exact.argmin(1))  # every distance is exact: no tolerance at all
    assert torch.equal(dist.cpu().double(), exact.min(1).values)
    assert idx[1] == 0


def test_lookup_strided_input():
    zt = randn(24, 45, seed=6)  # z = zt.t() has strides (1, 45)
    codebook = randn(33, 24, seed=7)
    idx, dist = codebook_lookup_triton(zt.t(), codebook)
    assert_nearest(zt.t(), codebook, idx, dist, reference_idx=codebook_lookup_torch(zt.t(), codebook)[0])


def test_lookup_empty_input():
    idx, dist = codebook_lookup_triton(randn(0, 8), randn(5, 8))
    assert idx.shape == (0,) and dist.shape == (0,)


def test_dispatch_reaches_the_kernels(monkeypatch):
    monkeypatch.setenv("VQI2I_KERNELS", "triton")
    for name in ("codebook_lookup_torch", "attention_torch", "decode_attention_torch"):
        monkeypatch.setattr(dispatch, name, lambda *a, **k: pytest.fail("took the torch path"))
    z, codebook = randn(20, 16, seed=8), randn(30, 16, seed=9)
    idx, dist = vqi2i_kernels.codebook_lookup(z, codebook)
    assert_nearest(z, codebook, idx, dist)
    q = randn(1, 2, 20, 16, seed=10)
    assert vqi2i_kernels.attention(q, q, q, causal=True).shape == q.shape
    lengths = torch.tensor([7], device=DEVICE)
    assert vqi2i_kernels.decode_attention(q[:, :, 0], q, q, lengths).shape == (1, 2, 16)


def test_quantizer_with_kernel_matches_taming(monkeypatch):
    monkeypatch.setenv("VQI2I_KERNELS", "triton")
    monkeypatch.setattr(dispatch, "codebook_lookup_torch", lambda *a, **k: pytest.fail("took the torch path"))
    check_quantizer_against_taming(device=DEVICE)


# --- attention ---------------------------------------------------------------------------------

ATTN_TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}

ATTN_SHAPES = [  # (B, H, Tq, Tk, Dh, causal)
    (2, 2, 40, 40, 16, True),
    (1, 2, 33, 70, 24, True),  # prefill after a cache: causal mask aligned to the end; Dh not a power of 2
    (2, 1, 37, 37, 32, False),
    (1, 2, 19, 50, 16, False),
    (1, 1, 1, 1, 16, True),  # a single token
    (1, 1, 1, 45, 16, True),  # one query against a long cache
    (1, 1, 32, 32, 64, True),  # exact tile multiples
]


def check_attention(b, h, tq, tk, dh, causal, dtype, config=None, seed=0, strided=False):
    if strided:  # [B, T, H, Dh] storage seen as [B, H, T, Dh], as the prior's q/k/v views are
        q, k, v = (randn(b, t, h, dh, dtype=dtype, seed=seed + i).transpose(1, 2) for i, t in enumerate((tq, tk, tk)))
    else:
        q, k, v = (randn(b, h, t, dh, dtype=dtype, seed=seed + i) for i, t in enumerate((tq, tk, tk)))
    grad = randn(b, h, tq, dh, dtype=dtype, seed=seed + 3)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    out = attention_triton(q, k, v, causal=causal, config=config)
    out.backward(grad)
    # reference: fp32 torch on the same (possibly half-precision) values
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = attention_torch(q32, k32, v32, causal=causal)
    ref.backward(grad.float())
    tol = ATTN_TOL[dtype]
    assert out.dtype == dtype and out.shape == (b, h, tq, dh)
    for name, got, want in (("out", out, ref), ("dq", q.grad, q32.grad), ("dk", k.grad, k32.grad),
                            ("dv", v.grad, v32.grad)):
        err = (got.float() - want).abs().max().item()
        scale = want.abs().max().item()
        assert err <= tol * max(1.0, scale), f"{name}: max error {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("b,h,tq,tk,dh,causal", ATTN_SHAPES)
def test_attention_fp32_forward_and_gradients(b, h, tq, tk, dh, causal):
    check_attention(b, h, tq, tk, dh, causal, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_half_precision(dtype, causal):
    check_attention(2, 2, 40, 40, 32, causal, dtype)


def test_attention_strided_inputs():
    check_attention(2, 3, 21, 21, 16, True, torch.float32, strided=True)


def test_attention_other_tiles():
    """Equal 16 x 16 tiles, unlike the default unequal ones: the causal split point moves."""
    check_attention(1, 2, 35, 50, 16, True, torch.float32, config={"BLOCK_M": 16, "BLOCK_N": 16})


# --- decode attention --------------------------------------------------------------------------

DECODE_CASES = [  # (B, H, Tmax, Dh, lengths, splits)
    (3, 2, 70, 16, [1, 70, 33], None),  # ragged; split over the cache
    (2, 2, 40, 24, [5, 40], 1),  # one split: the kernel writes the output itself
    (2, 1, 100, 32, [100, 7], 3),  # a split past the short sequence's end stays empty
    (1, 1, 1, 16, [1], None),
    (2, 2, 50, 16, [80, 3], None),  # a length past Tmax means the whole cache
]


@pytest.mark.parametrize("b,h,tmax,dh,lengths,splits", DECODE_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_attention_ragged(b, h, tmax, dh, lengths, splits, dtype):
    q = randn(b, h, dh, dtype=dtype, seed=11)
    kc, vc = randn(b, h, tmax, dh, dtype=dtype, seed=12), randn(b, h, tmax, dh, dtype=dtype, seed=13)
    lens = torch.tensor(lengths, device=DEVICE, dtype=torch.int32 if b == 2 else torch.int64)
    out = decode_attention_triton(q, kc, vc, lens, splits=splits)
    ref = decode_attention_torch(q.float(), kc.float(), vc.float(), lens.clamp(max=tmax))
    assert out.dtype == dtype and out.shape == (b, h, dh)
    err = (out.float() - ref).abs().max().item()
    assert err <= ATTN_TOL[dtype] * max(1.0, ref.abs().max().item()), err


def test_decode_attention_strided_cache_view():
    """The prior hands over cache.k[layer]: a view into a [L, B, H, Tmax, Dh] buffer."""
    cache = randn(2, 3, 2, 40, 16, seed=14)
    q = randn(3, 2, 16, seed=15)
    lens = torch.tensor([40, 9, 17], device=DEVICE)
    out = decode_attention_triton(q, cache[1], cache[0], lens, splits=2)
    ref = decode_attention_torch(q, cache[1], cache[0], lens)
    assert torch.allclose(out, ref, atol=2e-5)


def test_decode_matches_last_row_of_prefill_attention():
    """One decode step equals the last row of causal attention over the same keys."""
    b, h, t, dh = 2, 2, 30, 16
    q, k, v = (randn(b, h, t, dh, seed=20 + i) for i in range(3))
    full = attention_triton(q, k, v, causal=True)
    step = decode_attention_triton(q[:, :, -1], k, v, torch.full((b,), t, device=DEVICE))
    assert torch.allclose(step, full[:, :, -1], atol=2e-5)
