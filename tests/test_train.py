"""Training: it learns, checkpoints round-trip, an interrupted run resumes bit for bit, runs are not
clobbered, paired data adds its term, and config mistakes are named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vqi2i.checkpoint import load_model, resolve_checkpoint, save_checkpoint
from vqi2i.config import load_config
from vqi2i.errors import UserError
from vqi2i.images import list_images, load_image
from vqi2i.models.build import build_model
from vqi2i.train.run import prepare_run
from vqi2i.train.runtime import read_metrics, seed_everything
from vqi2i.train.trainer import train

TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _train_images(scenes_dir: Path, domain: str) -> torch.Tensor:
    return torch.stack([load_image(p) for p in list_images(scenes_dir / f"train{domain.upper()}")])


@torch.no_grad()
def _recon_l1(model, scenes_dir: Path) -> float:
    losses = []
    for d in ("a", "b"):
        x = _train_images(scenes_dir, d)
        _, z_q = model.encode_content(x)
        losses.append(F.l1_loss(model.decode(z_q, model.encode_style(x, d), d), x).item())
    return sum(losses) / 2


def test_short_run_learns_and_uses_many_codes(tiny_run, tiny_run_cfg, scenes_dir):
    seed_everything(int(tiny_run_cfg.train.seed))  # the trainer's initial weights
    initial = build_model(tiny_run_cfg).eval()
    trained, _ = load_model(tiny_run)
    before, after = _recon_l1(initial, scenes_dir), _recon_l1(trained, scenes_dir)
    assert after < 0.85 * before, (before, after)

    log = read_metrics(tiny_run)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[-1]["recon"] < log[0]["recon"]
    assert all(r["codes_used"] > 1 for r in log)
    assert log[-1]["val_codes_used"] > 1
    assert (tiny_run / "samples" / "step-0000004.png").is_file()
    with torch.no_grad():
        tokens, _ = trained.encode_content(_train_images(scenes_dir, "a"))
    assert tokens.unique().numel() > 1


def test_checkpoint_round_trip(tmp_path, tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg).eval()
    ckpt = save_checkpoint(tmp_path / "run", 7, tiny_cfg, {"model": model})
    loaded, cfg = load_model(tmp_path / "run")
    assert ckpt == resolve_checkpoint(tmp_path / "run") and cfg.model == tiny_cfg.model
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    style = model.sample_style(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model.translate(x, "a", "b", style), loaded.translate(x, "a", "b", style))
        assert torch.equal(model.encode_style(x, "b"), loaded.encode_style(x, "b"))


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in records]


def test_exact_resume(tmp_path, tiny_run, tiny_run_cfg):
    """Stop at step 2, resume to 4: the same logged losses and the same final bytes as tiny_run,
    which ran 4 steps without stopping (the run crosses an epoch and two dead-code restarts)."""
    run = tmp_path / "resumed"
    train(tiny_run_cfg, run, progress=False, stop_at=2)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000002"
    assert [r["step"] for r in read_metrics(run)] == [1, 2]
    # the command line resumes from the config saved in the checkpoint
    cfg = load_config(resolve_checkpoint(run) / "config.yaml")
    train(cfg, run, resume=True, progress=False)

    reference, resumed = read_metrics(tiny_run), read_metrics(run)
    assert {k for r in reference for k in r} >= {"recon", "vq", "adv", "disc", "style", "content", "codes_restarted"}
    assert _without_timing(resumed) == _without_timing(reference)
    assert sum(r["codes_restarted"] for r in reference) > 0
    final = "checkpoints/step-0000004"
    for name in ("model.safetensors", "disc.safetensors", "state.json"):
        assert (run / final / name).read_bytes() == (tiny_run / final / name).read_bytes(), name
    ours = torch.load(run / final / "trainer.pt", weights_only=True)
    theirs = torch.load(tiny_run / final / "trainer.pt", weights_only=True)
    for opt in ("opt_g", "opt_d"):
        for key, state in theirs[opt]["state"].items():
            for name, value in state.items():
                assert torch.equal(ours[opt]["state"][key][name], value), (opt, key, name)
    assert torch.equal(ours["rng"]["torch"], theirs["rng"]["torch"])
    assert (run / "samples/step-0000004.png").read_bytes() == (tiny_run / "samples/step-0000004.png").read_bytes()


def test_refuses_to_clobber_a_run(tmp_path, tiny_run):
    with pytest.raises(UserError, match="--overwrite"):
        prepare_run(tiny_run, resume=False, overwrite=False)
    with pytest.raises(UserError, match="cannot resume"):
        prepare_run(tmp_path / "empty", resume=True, overwrite=False)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    prepare_run(copy, resume=True, overwrite=False)  # resuming a run with a checkpoint is fine
    prepare_run(copy, resume=False, overwrite=True)
    assert not copy.exists()


def test_paired_data_trains_with_the_paired_term(tmp_path, scenes_dir, make_tiny_cfg, tiny_run):
    # the synthetic test scenes are true pairs: testA/NAME and testB/NAME show the same landscape
    root = tmp_path / "paired"
    shutil.copytree(scenes_dir / "testA", root / "trainA")
    shutil.copytree(scenes_dir / "testB", root / "trainB")
    cfg = make_tiny_cfg(
        "data.kind=paired", f"data.root={root}", "train.max_steps=1", "train.batch_size=2", "train.log_every=1"
    )
    last = train(cfg, tmp_path / "run", progress=False)
    assert last["step"] == 1 and 0 < last["paired"] < 10
    assert "paired" not in read_metrics(tiny_run)[-1]  # unpaired data has no such term


def test_unknown_config_keys_are_named(tmp_path):
    with pytest.raises(UserError, match=r"unknown config key 'train\.max_step' \(did you mean 'train\.max_steps'\?\)"):
        load_config(TINY_CONFIG, ["train.max_step=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  n_embd: 16\n")
    with pytest.raises(UserError, match=r"'model\.n_embd' \(did you mean 'model\.n_embed'\?\)"):
        load_config(bad)
    bad.write_text(json.dumps({"trian": {"lr": 1}}))
    with pytest.raises(UserError, match=r"'trian' \(did you mean 'train'\?\)"):
        load_config(bad)
    with pytest.raises(UserError, match="not one of"):
        load_config(TINY_CONFIG, ["model.variant=bimodal"])
    with pytest.raises(UserError, match="loss.lowpass_size must be >= 1"):
        load_config(TINY_CONFIG, ["loss.lowpass_size=0"])
