"""Shared fixtures: a tiny synthetic data set, the tiny config pointing at it, and one trained tiny run.

Everything is made once per test session (training is the slow part on a CPU), so treat
`scenes_dir` and `tiny_run` as read-only: copy them before changing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The Triton kernels are tested on CPU under the interpreter. Triton reads TRITON_INTERPRET when a
# kernel module is first imported, and any test module may import one, so set it before collection.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# One intra-op thread: on a small shared CPU box, torch's thread pool waiting on descheduled workers
# made these tests 3-5x slower (wall and CPU time) than one thread. VQI2I_TEST_THREADS=N to change.
torch.set_num_threads(int(os.environ.get("VQI2I_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"


def load_script(name: str):
    """scripts/NAME.py as a module, for testing a script's main() in-process."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module

# the tiny run: 4 steps of batch 2, every step logged, checkpoints at steps 2 and 4, dead-code
# restarts at steps 2 and 4 (so an interrupted run resumed at step 2 crosses one)
TINY_RUN_OVERRIDES = (
    "train.max_steps=4",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=2",
    "train.ckpt_every=2",
    "model.codebook.restart_every=2",
)


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    """Summer/winter scenes in the CycleGAN layout: 8 train and 2 test images per domain, 32 px."""
    from vqi2i.data.scenes import make_scenes

    return make_scenes(tmp_path_factory.mktemp("data") / "scenes", n_train=8, n_test=2, size=32, progress=False)


@pytest.fixture(scope="session")
def make_tiny_cfg(scenes_dir):
    """make_tiny_cfg(*overrides) -> configs/tiny.yaml on `scenes_dir`, on the CPU, with `key=value` overrides."""
    from vqi2i.config import load_config

    def make(*overrides: str):
        return load_config(TINY_CONFIG, [f"data.root={scenes_dir}", "train.device=cpu", *overrides])

    return make


@pytest.fixture
def tiny_cfg(make_tiny_cfg):
    """A fresh tiny config (safe to modify) on the session's synthetic scenes."""
    return make_tiny_cfg()


@pytest.fixture(scope="session")
def tiny_run_cfg(make_tiny_cfg):
    """The config `tiny_run` was trained with (do not modify: make your own with make_tiny_cfg)."""
    return make_tiny_cfg(*TINY_RUN_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_run_cfg) -> Path:
    """A run folder with a trained tiny translator (TINY_RUN_OVERRIDES), made once per session."""
    from vqi2i.train.trainer import train

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_run_cfg, run_dir, progress=False)
    return run_dir
