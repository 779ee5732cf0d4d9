"""Pieces of the prior trainer: training windows, the validation split, config checking."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vqi2i.config import load_prior_config
from vqi2i.errors import UserError
from vqi2i.models.prior import PriorConfig
from vqi2i.tokens import TokenSet
from vqi2i.train.prior_trainer import random_windows, split_validation, training_windows

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_random_windows_are_sub_grids_of_their_own_grid():
    grids = torch.arange(3 * 6 * 7).view(3, 6, 7)
    w = random_windows(grids, 2, 3, torch.Generator().manual_seed(0))
    assert w.shape == (3, 2, 3)
    for b in range(3):
        top, left = divmod(int(w[b, 0, 0]) - b * 42, 7)
        assert torch.equal(w[b], grids[b, top : top + 2, left : left + 3])


def test_training_windows_sizes():
    grids = torch.zeros(4, 6, 6, dtype=torch.long)
    pcfg = PriorConfig(vocab_size=8, block_rows=5, block_cols=6, n_layer=1, n_head=1, n_embd=8)
    always = OmegaConf.create({"window_prob": 1.0, "min_window": 2})
    never = OmegaConf.create({"window_prob": 0.0, "min_window": 2})
    assert training_windows(grids, pcfg, never, torch.Generator().manual_seed(0)).shape == (4, 5, 6)
    sizes = {tuple(training_windows(grids, pcfg, always, torch.Generator().manual_seed(s)).shape[1:])
             for s in range(30)}
    assert len(sizes) > 3 and all(2 <= r <= 5 and 2 <= c <= 6 for r, c in sizes)


def test_validation_split_holds_out_whole_images_with_their_mirrors():
    n = 20  # 10 images per domain, each with its mirror image
    image = torch.arange(10).repeat(4)
    domain = torch.tensor([0] * 20 + [1] * 20, dtype=torch.uint8)
    flipped = torch.tensor(([0] * 10 + [1] * 10) * 2, dtype=torch.uint8)
    ts = TokenSet(torch.zeros(2 * n, 2, 2, dtype=torch.long), domain, flipped, image)
    train, val = split_validation(ts, 0.2, seed=0)
    assert len(train) + len(val) == 40 and len(val) == 8  # 4 of 20 source images, both orientations
    key = lambda s: {(int(d), int(i)) for d, i in zip(s.domain, s.image)}  # noqa: E731
    assert not key(train) & key(val)
    assert sorted(val.flipped.tolist()) == [0] * 4 + [1] * 4


def test_prior_config_checks_keys_and_values(tmp_path):
    cfg = load_prior_config(CONFIGS / "prior_scenes.yaml", ["train.max_steps=10"])
    assert cfg.train.max_steps == 10 and cfg.kind == "prior"
    with pytest.raises(UserError, match="did you mean 'train.batch_size'"):
        load_prior_config(CONFIGS / "prior_tiny.yaml", ["train.batchsize=3"])
    with pytest.raises(UserError, match="divisible"):
        load_prior_config(CONFIGS / "prior_tiny.yaml", ["model.n_head=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  n_layers: 2\n")
    with pytest.raises(UserError, match="model.n_layers"):
        load_prior_config(bad)
