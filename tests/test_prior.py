"""The content prior: KV-cached logits equal a full recompute, and a small prior memorises its data."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vqi2i.models.prior import ContentPrior, PriorConfig, window_sequence
from vqi2i.sampling import SamplingOptions, complete_grid, extend_right, generate_grids, sample_grid


def tiny_prior(seed=0, vocab=32, rows=4, cols=5):
    torch.manual_seed(seed)
    cfg = PriorConfig(vocab_size=vocab, block_rows=rows, block_cols=cols, n_layer=2, n_head=2, n_embd=32)
    return ContentPrior(cfg).eval()


def record_steps():
    steps = []
    return steps, lambda top, left, cell, logits: steps.append((top, left, cell, logits.clone()))


def assert_steps_match_full_recompute(prior, grid, steps):
    R, C = min(grid.shape[1], prior.cfg.block_rows), min(grid.shape[2], prior.cfg.block_cols)
    assert steps, "no step was recorded"
    for top, left, cell, logits in steps:
        full = prior.window_logits(grid[:, top : top + R, left : left + C])[:, cell]
        torch.testing.assert_close(logits, full, atol=1e-5, rtol=0)


@torch.no_grad()
def test_cached_logits_equal_full_recompute_in_one_window():
    prior = tiny_prior()
    steps, hook = record_steps()
    grid = generate_grids(prior, 3, 4, 5, generator=torch.Generator().manual_seed(1), on_step=hook)
    assert len(steps) == 20 and {(t, l) for t, l, _, _ in steps} == {(0, 0)}
    assert_steps_match_full_recompute(prior, grid, steps)


@torch.no_grad()
@pytest.mark.parametrize("stride", [None, (1, 1), (3, 2)])
def test_cached_logits_equal_full_recompute_across_window_shifts(stride):
    prior = tiny_prior(seed=1)
    steps, hook = record_steps()
    grid = generate_grids(prior, 2, 7, 9, allow_window=True, stride=stride,
                          generator=torch.Generator().manual_seed(2), on_step=hook)
    assert len(steps) == 63
    assert len({(t, l) for t, l, _, _ in steps}) > 2  # the window really moved, in both directions
    assert len({t for t, _, _, _ in steps}) > 1 and len({l for _, l, _, _ in steps}) > 1
    assert_steps_match_full_recompute(prior, grid, steps)


@torch.no_grad()
def test_cached_logits_equal_full_recompute_with_known_chunks():
    """Known cells are fed as multi-slot chunks (the prefill path); their logits must match too."""
    prior = tiny_prior(seed=2)
    start = torch.randint(0, 32, (2, 4, 5), generator=torch.Generator().manual_seed(3))
    steps, hook = record_steps()
    grid = extend_right(prior, start, 6, generator=torch.Generator().manual_seed(4), on_step=hook)
    assert grid.shape == (2, 4, 11) and len(steps) == 24
    assert_steps_match_full_recompute(prior, grid, steps)
    known = torch.rand(4, 5, generator=torch.Generator().manual_seed(5)) < 0.5
    steps, hook = record_steps()
    grid = complete_grid(prior, start, known, generator=torch.Generator().manual_seed(6), on_step=hook)
    assert len(steps) == int((~known).sum())
    assert_steps_match_full_recompute(prior, grid, steps)


def test_kv_cache_through_the_triton_kernels_matches_a_torch_recompute():
    """The sampler's prefill chunks (strided cache slices) and decode steps through `vqi2i_kernels` in Triton mode
    (the interpreter on CPU, in a child process so the setting cannot leak into other tests)."""
    pytest.importorskip("triton")
    code = textwrap.dedent("""
        import os, torch
        from vqi2i_kernels import triton_common
        from vqi2i.models.prior import ContentPrior, PriorConfig
        from vqi2i.sampling import extend_right
        torch.manual_seed(0)
        cfg = PriorConfig(vocab_size=16, block_rows=2, block_cols=3, n_layer=1, n_head=2, n_embd=32)
        p = ContentPrior(cfg).eval()
        steps = []
        g = extend_right(p, torch.randint(0, 16, (2, 2, 3)), 2, stride=(1, 1),
                         generator=torch.Generator().manual_seed(0),
                         on_step=lambda t, l, c, lg: steps.append((t, l, c, lg.clone())))
        os.environ["VQI2I_KERNELS"] = "torch"
        with torch.no_grad():
            err = max((p.window_logits(g[:, t:t + 2, l:l + 3])[:, c] - lg).abs().max().item()
                      for t, l, c, lg in steps)
        print(triton_common.INTERPRETED or torch.cuda.is_available(), len(steps), err)
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1", "VQI2I_KERNELS": "triton", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    used_triton, n_steps, err = out.stdout.split()
    assert used_triton == "True" and int(n_steps) == 4
    assert float(err) < 1e-5


def test_cache_overflow_and_bad_config_are_errors():
    prior = tiny_prior()
    cache = prior.new_cache(1, 3)
    inputs, rows, cols = window_sequence(torch.zeros(1, 1, 4, dtype=torch.long), prior.start_token)
    with pytest.raises(ValueError, match="KV cache"):
        prior(inputs, rows, cols, cache)
    with pytest.raises(ValueError, match="divisible"):
        PriorConfig(vocab_size=8, block_rows=2, block_cols=2, n_head=3, n_embd=32)


def test_small_prior_memorises_a_handful_of_grids():
    torch.manual_seed(0)
    data = torch.randint(0, 16, (4, 4, 4))
    data[:, 0, 0] = torch.tensor([3, 7, 11, 13])  # distinct first tokens: the rest is fully determined
    cfg = PriorConfig(vocab_size=16, block_rows=4, block_cols=4, n_layer=2, n_head=2, n_embd=64)
    prior = ContentPrior(cfg)
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(120):
        loss = prior.loss(data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    prior.eval()
    with torch.no_grad():
        logits = prior.window_logits(data)
        targets = data.reshape(4, -1)[:, 1:].reshape(-1)
        nll = torch.nn.functional.cross_entropy(logits[:, 1:].reshape(-1, 16), targets)
    assert nll.item() < 0.02  # every token after the first is predicted with near certainty
    greedy = SamplingOptions(top_k=1)
    sample = generate_grids(prior, 1, 4, 4, options=greedy)
    assert any(torch.equal(sample[0], d) for d in data)
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[0, 0] = True
    start = torch.zeros_like(data)
    start[:, 0, 0] = data[:, 0, 0]
    assert torch.equal(sample_grid(prior, start, known, options=greedy), data)
