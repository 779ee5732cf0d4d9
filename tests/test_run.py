"""The run skeleton both trainers share (vqi2i/train/run.py): Ctrl-C saves a checkpoint that resumes where it
stopped; a distributed run refuses to save off schedule; logs and samples land in the run folder."""

from __future__ import annotations

import pytest
import torch

from vqi2i.config import load_config
from vqi2i.errors import UserError
from vqi2i.train.distributed import SINGLE, DistContext
from vqi2i.train.run import Run
from vqi2i.train.runtime import read_metrics


def _run(run_dir, ctx=SINGLE) -> Run:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    return Run(load_config(None), run_dir, ctx, modules={"model": net}, optimizers={"opt": opt}, per_epoch=2,
               tensorboard=False, fields={"note": "kept"})


def test_ctrl_c_saves_a_checkpoint_that_resumes_where_it_stopped(tmp_path):
    run = _run(tmp_path / "run")
    run.open_logs(0, resumed=False)
    run.write({"step": 1, "loss": 0.5}, 1)
    assert run.sample_sheet(1, lambda path: path.write_bytes(b"png") and "drawn") == "drawn"
    assert (tmp_path / "run" / "samples" / "step-0000001.png").read_bytes() == b"png"
    step = 0
    with pytest.raises(UserError, match=r"^interrupted at step 3; saved .*step-0000003 \(continue with --resume\)$"):
        with run.loop(step, False, lambda: step):
            step = 3
            raise KeyboardInterrupt
    saved = dict(run.modules["model"].state_dict())
    again = _run(tmp_path / "run")
    with torch.no_grad():
        again.modules["model"].weight.zero_()
    torch.manual_seed(123)
    resumed = again.resume(torch.device("cpu"))
    assert resumed.step == 3 and resumed.world_size == 1 and set(resumed.trainer_state) == {"opt", "rng"}
    assert torch.equal(again.modules["model"].weight, saved["weight"])
    assert torch.equal(torch.get_rng_state(), resumed.trainer_state["rng"]["torch"])  # the RNG where it was
    assert again.optimizers["opt"].state_dict()["state"][0]["step"] == 1
    again.open_logs(resumed.step, resumed=True)
    assert read_metrics(tmp_path / "run") == [{"step": 1, "loss": 0.5}]  # kept: logged before the checkpoint


def test_a_distributed_run_saves_only_on_schedule(tmp_path):
    run = _run(tmp_path / "run", DistContext(rank=0, world_size=2))
    with pytest.raises(UserError, match="^interrupted at step 5; a distributed run saves only on schedule"):
        with run.loop(5, False, lambda: 5):
            raise KeyboardInterrupt
    assert not (tmp_path / "run" / "checkpoints").exists()
