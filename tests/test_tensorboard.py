"""TensorBoard event files beside metrics.jsonl: scalars, preview grids, the codebook histogram, the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqi2i.cli import main
from vqi2i.errors import UserError
from vqi2i.train import tensorboard as tbmod

pytest.importorskip("tensorboard")

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_train_writes_event_files_and_prints_the_command(tmp_path, scenes_dir, capsys):
    run = tmp_path / "run"
    rc = main(["train", str(TINY), f"data.root={scenes_dir}", "train.max_steps=2", "train.batch_size=2",
               "train.log_every=1", "train.image_every=2", "train.ckpt_every=2", "train.tensorboard=true",
               "--device", "cpu", "--no-progress", "--out", str(run)])
    assert rc == 0
    assert f"tensorboard --logdir {run}" in capsys.readouterr().out
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # beside metrics.jsonl
    acc = _events(run)
    tags = acc.Tags()
    assert {"train/recon", "train/total", "train/codes_used", "val/recon_l1"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("train/recon")] == [1, 2]
    assert tags["images"] == ["samples"] and acc.Images("samples")[0].step == 2
    assert tags["histograms"] == ["codebook/usage"]
    hist = acc.Histograms("codebook/usage")[-1].histogram_value
    assert hist.num == 2 * 2 * 8 * 8  # the logged step's tokens: 2 domains x batch 2 x 8 x 8 tokens
    assert any(t.startswith("config") for t in tags["tensors"])


def test_tensorboard_setting():
    assert tbmod.tensorboard_wanted(False) is False
    assert tbmod.tensorboard_wanted("auto") is True  # installed here
    with pytest.raises(UserError, match="auto, true or false"):
        tbmod.tensorboard_wanted("sometimes")


def test_tensorboard_true_without_the_package_is_named(monkeypatch):
    monkeypatch.setattr(tbmod, "tensorboard_available", lambda: False)
    assert tbmod.tensorboard_wanted("auto") is False
    with pytest.raises(UserError, match=r'pip install "vqi2i\[tb\]"'):
        tbmod.tensorboard_wanted(True)
