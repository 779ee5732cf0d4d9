"""The torch paths of the kernels and the dispatch (no Triton needed).

The Triton kernels themselves are tested in test_kernels_triton.py (interpreter on CPU, native on
CUDA). The helpers here judge a nearest-code answer honestly: an index that differs from the
exact (float64) nearest code is accepted only when the two codes' exact distances differ by less
than the fp32 rounding bound of the distance formula, i.e. a genuine float tie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vqi2i_kernels
from vqi2i.errors import UserError
from vqi2i_kernels import dispatch
from vqi2i_kernels.reference import CHUNK_BYTES, attention_torch, codebook_lookup_torch, decode_attention_torch

EPS32 = torch.finfo(torch.float32).eps


def exact_distances(z: torch.Tensor, codebook: torch.Tensor, metric: str) -> torch.Tensor:
    """[N, K] float64 distances from the (possibly low-precision) values actually given."""
    z64, e64 = z.double(), codebook.double()
    if metric == "cosine":
        return 1.0 - F.normalize(z64, dim=1) @ F.normalize(e64, dim=1).t()
    return (z64 * z64).sum(1, keepdim=True) + (e64 * e64).sum(1) - 2.0 * z64 @ e64.t()


def rounding_bound(z: torch.Tensor, codebook: torch.Tensor, metric: str) -> torch.Tensor:
    """[N, K] worst-case error of evaluating each distance in fp32 with D-term sums:
    |fl(x.y) - x.y| <= D eps |x||y|, so z^2 + e^2 - 2 z.e is off by at most ~(D+2) eps (|z|^2 + |e|^2)
    (cosine: unit vectors, plus the normalisation's own rounding)."""
    d = z.shape[1]
    if metric == "cosine":
        return torch.full((z.shape[0], codebook.shape[0]), 4.0 * (d + 4) * EPS32, dtype=torch.float64)
    z_sq = z.double().pow(2).sum(1, keepdim=True)
    e_sq = codebook.double().pow(2).sum(1)
    return 2.0 * (d + 2) * EPS32 * (z_sq + e_sq)


def assert_nearest(z, codebook, idx, dist=None, metric="l2", reference_idx=None):
    """Every index is the exact nearest code, or within a float tie of it; every distance matches.

    `reference_idx` (another implementation's answer) must agree except within such ties too.
    Returns the number of rows decided by a float tie (for information; it is not bounded).
    """
    z, codebook = z.detach().cpu(), codebook.detach().cpu()
    idx = idx.cpu()
    assert idx.dtype == torch.int64 and idx.shape == (z.shape[0],)
    exact = exact_distances(z, codebook, metric)
    bound = rounding_bound(z, codebook, metric)
    rows = torch.arange(z.shape[0])
    best = exact.min(dim=1).values
    gap = exact[rows, idx] - best
    allowed = bound[rows, idx] + bound.gather(1, exact.argmin(1, keepdim=True)).squeeze(1)
    assert (gap <= allowed).all(), f"rows {torch.nonzero(gap > allowed).flatten().tolist()[:10]} not nearest"
    if dist is not None:
        dist = dist.cpu()
        assert dist.dtype == torch.float32 and dist.shape == (z.shape[0],)
        assert (dist.double() - exact[rows, idx]).abs().le(bound[rows, idx] + 1e-6).all()
    ties = 0
    if reference_idx is not None:
        reference_idx = reference_idx.cpu().flatten()
        differ = reference_idx != idx
        ties = int(differ.sum())
        pair_gap = (exact[rows, idx] - exact[rows, reference_idx]).abs()
        pair_allowed = bound[rows, idx] + bound[rows, reference_idx]
        assert (pair_gap[differ] <= pair_allowed[differ]).all(), "indices differ beyond a float tie"
    return ties


def integer_case(n: int, k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Small-integer data: every distance is exact in fp32, ties are exact and plentiful
    (duplicate codes, codes of equal norm seen from z = 0, equidistant codes)."""
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randint(-2, 3, (k, d), generator=g).float()
    if k > 3:
        codebook[k - 1] = codebook[0]  # duplicates far apart: the lower index must win
        codebook[k // 2] = codebook[1]
    z = torch.randint(-2, 3, (n, d), generator=g).float()
    z[0] = 0.0
    if n > 1:
        z[1] = codebook[0]
    return z, codebook


# --- torch path of codebook_lookup -------------------------------------------------------------


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lookup_torch_is_nearest_across_chunks(metric, dtype):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 24, generator=g).to(dtype)
    codebook = torch.randn(70, 24, generator=g).to(dtype)
    idx, dist = codebook_lookup_torch(z, codebook, metric=metric, chunk=37)  # 37 does not divide 300
    assert_nearest(z, codebook, idx, dist, metric)
    whole_idx, whole_dist = codebook_lookup_torch(z, codebook, metric=metric, chunk=10**6)
    assert torch.equal(idx, whole_idx) and torch.equal(dist, whole_dist)


def test_lookup_torch_exact_ties_go_to_lowest_index():
    z, codebook = integer_case(200, 40, 6, seed=1)
    idx, dist = codebook_lookup_torch(z, codebook, chunk=16)
    exact = exact_distances(z, codebook, "l2")
    assert torch.equal(idx, exact.argmin(1)), "argmin over exact distances picks the first minimum"
    assert torch.equal(dist.double(), exact.min(1).values)
    assert idx[1] == 0  # z[1] equals codes 0 and K-1


def test_lookup_torch_default_chunk_bounds_the_block(monkeypatch):
    z = torch.randn(5000, 8)
    codebook = torch.randn(2048, 8)
    seen = []
    real_min = torch.min

    def spy(d, *args, **kw):  # sees every block of distances the torch path builds
        seen.append(d.numel() * d.element_size())
        return real_min(d, *args, **kw)

    monkeypatch.setattr(torch, "min", spy)
    codebook_lookup_torch(z, codebook)
    monkeypatch.undo()
    assert len(seen) > 1 and max(seen) <= CHUNK_BYTES  # 5000 x 2048 fp32 would be 41 MB


def test_lookup_carries_no_gradient():
    z = torch.randn(10, 4, requires_grad=True)
    idx, dist = vqi2i_kernels.codebook_lookup(z, torch.randn(6, 4, requires_grad=True))
    assert not dist.requires_grad and not idx.requires_grad


def test_quantizer_matches_taming_indices_torch_path(monkeypatch):
    monkeypatch.setenv("VQI2I_KERNELS", "torch")
    check_quantizer_against_taming(device="cpu")


def check_quantizer_against_taming(device: str = "cpu") -> int:
    """vqi2i's VectorQuantizer (through vqi2i_kernels.codebook_lookup) against taming's on one codebook:
    the same indices (up to float ties, judged exactly), hence the same z_q and loss."""
    from taming.modules.vqvae.quantize import VectorQuantizer as TamingVQ

    from vqi2i.models.quantizer import VectorQuantizer

    torch.manual_seed(3)
    theirs = TamingVQ(96, 20, beta=0.25)
    ours = VectorQuantizer(n_embed=96, embed_dim=20, beta=0.25)
    with torch.no_grad():
        theirs.embedding.weight.copy_(torch.randn(96, 20) * 0.5)
        ours.embedding.weight.copy_(theirs.embedding.weight)
    ours.eval().to(device)
    z = torch.randn(3, 20, 7, 9)
    with torch.no_grad():
        zq_t, loss_t, (_, _, idx_t) = theirs(z)
        zq, loss, idx = ours(z.to(device))
    assert idx.shape == (3, 7, 9)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 20)
    ties = assert_nearest(rows, theirs.embedding.weight, idx.flatten(), reference_idx=idx_t.flatten())
    same = idx.flatten().cpu() == idx_t.flatten()
    zq_rows = zq.cpu().permute(0, 2, 3, 1).reshape(-1, 20)
    zq_t_rows = zq_t.permute(0, 2, 3, 1).reshape(-1, 20)
    assert torch.allclose(zq_rows[same], zq_t_rows[same], atol=1e-6)
    if ties == 0:
        assert torch.allclose(loss.cpu(), loss_t, rtol=1e-5)
    return ties


# --- torch paths of attention and decode -------------------------------------------------------


def explicit_attention(q, k, v, causal):
    """minGPT-style attention with the end-aligned causal mask, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    tq, tk = q.shape[2], k.shape[2]
    att = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        mask = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
        att = att.masked_fill(~mask, float("-inf"))
    return att.softmax(-1) @ v


@pytest.mark.parametrize("tq,tk,causal", [(9, 9, True), (4, 11, True), (7, 13, False)])
def test_attention_torch_matches_explicit(tq, tk, causal):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, t, 8, generator=g) for t in (tq, tk, tk))
    out = attention_torch(q, k, v, causal=causal)
    assert torch.allclose(out.double(), explicit_attention(q, k, v, causal), atol=1e-5)


def test_attention_rejects_causal_with_more_queries_than_keys():
    q = torch.randn(1, 1, 5, 8)
    with pytest.raises(ValueError, match="Tq <= Tk"):
        vqi2i_kernels.attention(q, q[:, :, :3], q[:, :, :3], causal=True)


def test_decode_torch_matches_explicit_per_sequence():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, 8, generator=g)
    kc, vc = torch.randn(3, 2, 10, 8, generator=g), torch.randn(3, 2, 10, 8, generator=g)
    lengths = torch.tensor([1, 10, 4])
    out = decode_attention_torch(q, kc, vc, lengths)
    for b, n in enumerate(lengths.tolist()):
        want = explicit_attention(q[b : b + 1, :, None], kc[b : b + 1, :, :n], vc[b : b + 1, :, :n], False)
        assert torch.allclose(out[b].double(), want[0, :, 0], atol=1e-5)


# --- dispatch ----------------------------------------------------------------------------------


def test_unknown_kernel_mode_is_a_user_error(monkeypatch):
    monkeypatch.setenv("VQI2I_KERNELS", "trtion")
    with pytest.raises(UserError, match="did you mean 'triton'"):
        vqi2i_kernels.codebook_lookup(torch.randn(4, 3), torch.randn(5, 3))


def test_forced_torch_never_calls_triton(monkeypatch):
    monkeypatch.setenv("VQI2I_KERNELS", "torch")
    monkeypatch.setattr(dispatch, "_lookup_why_not", lambda *a: pytest.fail("consulted the Triton path"))
    idx, _ = vqi2i_kernels.codebook_lookup(torch.randn(4, 3), torch.randn(5, 3))
    assert idx.shape == (4,)


def test_forced_triton_on_cpu_without_interpreter_is_a_user_error(monkeypatch):
    pytest.importorskip("triton")
    from vqi2i_kernels import triton_common

    monkeypatch.setattr(triton_common, "INTERPRETED", False)
    monkeypatch.setenv("VQI2I_KERNELS", "triton")
    with pytest.raises(UserError, match="TRITON_INTERPRET=1"):
        vqi2i_kernels.codebook_lookup(torch.randn(4, 3), torch.randn(5, 3))


def test_cpu_auto_path_never_imports_triton():
    """CPU users get the torch paths without importing triton at all."""
    code = (
        "import sys, torch, vqi2i_kernels\n"
        "q = torch.randn(1, 2, 5, 8)\n"
        "vqi2i_kernels.codebook_lookup(torch.randn(6, 8), torch.randn(4, 8))\n"
        "vqi2i_kernels.attention(q, q, q).sum()\n"
        "vqi2i_kernels.decode_attention(q[:, :, 0], q, q, torch.tensor([3]))\n"
        "import vqi2i.models.quantizer\n"
        "assert 'triton' not in sys.modules, 'triton was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VQI2I_KERNELS", "TRITON_INTERPRET")}
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_bench_script_runs_on_cpu():
    """The benchmark's CPU run (tiny sizes): Triton rows say why they are skipped, the rest have figures."""
    env = {k: v for k, v in os.environ.items() if k not in ("VQI2I_KERNELS", "TRITON_INTERPRET")}
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "scripts/bench_kernels.py", "--smoke", "--reps", "1", "--device", "cpu"]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    (lookup,) = report["lookup"]
    assert lookup["methods"]["triton"] == {"skipped": "no CUDA"}
    for name in ("torch_path", "taming", "cdist"):
        assert lookup["methods"][name]["ms"] > 0 and lookup["methods"][name]["peak_mb"] >= 0
    assert lookup["methods"]["torch_path"]["index_agreement_with_taming"] == 1.0
    assert lookup["speedup_torch_path_vs_taming"] > 0 and "memory_torch_path_vs_taming" in lookup
    assert {r["mode"] for r in report["attention"]} == {"forward", "forward+backward"}
    for row in report["attention"] + report["decode"]:
        assert row["methods"]["triton"] == {"skipped": "no CUDA"}
        assert all(m["ms"] > 0 for n, m in row["methods"].items() if n != "triton")
