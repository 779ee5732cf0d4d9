"""The sampler: seeding, top-k/top-p, kept tokens in extension and completion, window errors."""

import pytest
import torch

from vqi2i.errors import UserError
from vqi2i.models.prior import ContentPrior, PriorConfig
from vqi2i.sampling import (
    SamplingOptions,
    complete_grid,
    extend_right,
    filter_logits,
    generate_grids,
    known_region,
    window_starts,
)


@pytest.fixture(scope="module")
def prior():
    torch.manual_seed(0)
    cfg = PriorConfig(vocab_size=24, block_rows=4, block_cols=4, n_layer=2, n_head=2, n_embd=32)
    return ContentPrior(cfg).eval()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_top_k_one_is_deterministic(prior):
    greedy = SamplingOptions(top_k=1, temperature=0.7)
    a = generate_grids(prior, 3, 4, 4, options=greedy, generator=gen(0))
    b = generate_grids(prior, 3, 4, 4, options=greedy, generator=gen(123))
    assert torch.equal(a, b)
    assert torch.equal(a[0], a[1])  # nothing random left: every sample in the batch is the same


def test_same_seed_same_samples_other_seed_other_samples(prior):
    opts = SamplingOptions(temperature=1.0, top_k=10, top_p=0.95)
    a = generate_grids(prior, 4, 4, 6, options=opts, generator=gen(7), allow_window=True)
    b = generate_grids(prior, 4, 4, 6, options=opts, generator=gen(7), allow_window=True)
    c = generate_grids(prior, 4, 4, 6, options=opts, generator=gen(8), allow_window=True)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # a batch holds different samples
    assert a.min() >= 0 and a.max() < 24


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).sum(1).tolist() == [2, 2]
    assert torch.isfinite(k2[0, :2]).all() and torch.isfinite(k2[1, 2:]).all()
    p = filter_logits(logits, top_p=0.75)  # 0.5 + 0.3 reaches 0.75: two tokens kept
    assert torch.isfinite(p).tolist() == [[True, True, False, False], [False, False, True, True]]
    p_small = filter_logits(logits, top_p=0.1)  # the most likely token is always kept
    assert torch.isfinite(p_small).sum(1).tolist() == [1, 1]
    torch.testing.assert_close(filter_logits(logits, top_p=1.0), logits)


def test_top_k_restricts_samples(prior):
    logits_seen = []
    opts = SamplingOptions(top_k=3)
    grid = generate_grids(prior, 8, 4, 4, options=opts, generator=gen(3),
                          on_step=lambda t, l, c, lg: logits_seen.append((c, lg)))
    for cell, logits in logits_seen:
        allowed = torch.topk(logits, 3, dim=-1).indices
        tokens = grid.reshape(8, -1)[:, cell]
        assert (allowed == tokens[:, None]).any(1).all()


def test_extend_keeps_the_original_tokens(prior):
    start = torch.randint(0, 24, (2, 4, 4), generator=gen(0))
    for new_cols in (1, 3, 9):  # 9 new columns: far beyond the 4-column context
        out = extend_right(prior, start, new_cols, generator=gen(new_cols))
        assert out.shape == (2, 4, 4 + new_cols)
        assert torch.equal(out[:, :, :4], start)


@pytest.mark.parametrize("kind", ["quarter", "left", "top", "random"])
def test_complete_keeps_every_known_token(prior, kind):
    start = torch.randint(0, 24, (3, 4, 4), generator=gen(1))
    known = torch.rand(4, 4, generator=gen(2)) < 0.4 if kind == "random" else known_region(kind, 4, 4)
    out = complete_grid(prior, start, known, generator=gen(4))
    assert torch.equal(out[:, known], start[:, known])
    assert not torch.equal(out[:, ~known], start[:, ~known])  # the rest was sampled


def test_known_regions():
    assert known_region("quarter", 4, 6).sum() == 6 and known_region("quarter", 4, 6)[:2, :3].all()
    assert known_region("left", 4, 6)[:, :3].all() and known_region("left", 4, 6).sum() == 12
    assert known_region("top", 4, 6)[:2].all() and known_region("top", 4, 6).sum() == 12
    with pytest.raises(UserError, match="unknown region"):
        known_region("bottom", 4, 4)


def test_window_starts_cover_the_grid():
    assert window_starts(4, 4, 2) == [0]
    assert window_starts(9, 4, 2) == [0, 2, 4, 5]
    for size, window, stride in [(9, 4, 1), (16, 5, 3), (24, 16, 8)]:
        covered = set()
        for s in window_starts(size, window, stride):
            covered |= set(range(s, s + window))
        assert covered == set(range(size))


def test_bad_requests_are_user_errors(prior):
    with pytest.raises(UserError, match="larger than the prior's context of 4x4.*sliding window"):
        generate_grids(prior, 1, 4, 5)
    with pytest.raises(UserError, match="temperature"):
        SamplingOptions(temperature=0)
    with pytest.raises(UserError, match="top-p"):
        SamplingOptions(top_p=1.5)
    with pytest.raises(UserError, match="nothing to complete"):
        complete_grid(prior, torch.zeros(1, 4, 4, dtype=torch.long), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(UserError, match="tokens must lie"):
        extend_right(prior, torch.full((1, 4, 4), 24), 2)
