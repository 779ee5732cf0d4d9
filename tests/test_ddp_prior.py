"""The prior trainer under DDP (2 CPU processes, gloo): the same losses as one process with the same
global batch, an exact resume, rank 0 alone writing, a checkpoint one process loads and samples from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ddp_helpers import run_ranks

from vqi2i.checkpoint import resolve_checkpoint
from vqi2i.config import load_prior_config
from vqi2i.inference import load_prior
from vqi2i.train.prior_trainer import train_prior
from vqi2i.train.runtime import read_metrics

PRIOR_TINY = Path(__file__).resolve().parents[1] / "configs" / "prior_tiny.yaml"
COMMON = ["train.log_every=1", "train.eval_every=3", "train.ckpt_every=3"]
SKIP = {"tokens_per_s", "global_batch", "world_size"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prior_tokens")


def _args(codec: Path, out: Path, cache: Path, *overrides: str) -> list:
    return ["train-prior", PRIOR_TINY, "--codec", codec, "--out", out, "--device", "cpu", "--no-progress",
            f"data.token_cache={cache}", *COMMON, *overrides]


def test_two_process_prior_matches_one_process(tmp_path, tiny_run, cache):
    no_dropout = ("model.dropout=0",)
    cfg = load_prior_config(PRIOR_TINY, ["train.device=cpu", f"data.token_cache={cache}", *COMMON, *no_dropout])
    train_prior(cfg, tmp_path / "one", tiny_run, progress=False)  # batch 4 in one process
    run_ranks(_args(tiny_run, tmp_path / "two", cache, "train.batch_size=2", *no_dropout))  # 2 x 2
    ours, ref = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [r["step"] for r in ours] == [r["step"] for r in ref] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ours, ref):
        assert a.keys() - SKIP == b.keys() - SKIP and a["global_batch"] == 4
        for k in b.keys() - SKIP:
            assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-4), (a["step"], k)

    run = tmp_path / "two"  # rank 0 alone wrote it
    assert sorted(p.name for p in run.glob("*.jsonl")) == ["metrics.jsonl"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-0000003", "step-0000006"]
    assert json.loads((resolve_checkpoint(run) / "state.json").read_text())["world_size"] == 2
    prior, _ = load_prior(run)  # plain weights: one process loads them and samples
    from vqi2i.sampling import generate_grids

    grids = generate_grids(prior, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert grids.shape == (1, 4, 4) and int(grids.max()) < prior.cfg.vocab_size


def test_two_process_prior_resumes_exactly(tmp_path, tiny_run, cache):
    """With dropout on, each rank has its own stream; stopped at 3 and resumed, the run ends where an
    uninterrupted one does."""
    full, part = tmp_path / "full", tmp_path / "part"
    run_ranks(_args(tiny_run, full, cache, "train.batch_size=2"))
    run_ranks([*_args(tiny_run, part, cache, "train.batch_size=2"), "--stop-at", "3"])
    run_ranks(["train-prior", "--resume", part, "--no-progress"])
    strip = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]  # noqa: E731
    assert strip(read_metrics(part)) == strip(read_metrics(full))
    for name in ("model.safetensors", "state.json"):
        assert (part / "checkpoints/step-0000006" / name).read_bytes() == \
            (full / "checkpoints/step-0000006" / name).read_bytes(), name
