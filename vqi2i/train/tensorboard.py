"""TensorBoard event files beside metrics.jsonl (`train.tensorboard`: auto | true | false).

auto (the default) writes them when the `tensorboard` package is installed (`pip install "vqi2i[tb]"`);
true insists on it. Every logged scalar (train/..., val/...), the preview grids as images, the codebook
usage as a histogram and the resolved config as text. Open with `tensorboard --logdir RUN` (or the
folder of several runs to compare them). Only rank 0 of a distributed run writes them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vqi2i.errors import UserError


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_wanted(setting: Any) -> bool:
    """train.tensorboard -> whether to write event files (auto: when the package is installed)."""
    if setting is None or (isinstance(setting, str) and setting.lower() == "auto"):
        return tensorboard_available()
    if isinstance(setting, bool):
        if setting and not tensorboard_available():
            raise UserError('train.tensorboard=true needs the tensorboard package: pip install "vqi2i[tb]" '
                            "(or set train.tensorboard=false)")
        return setting
    raise UserError(f"train.tensorboard must be auto, true or false, got {setting!r}")


class TensorBoardLog:
    """A SummaryWriter on `log_dir`, or nothing at all when `log_dir` is None (every method a no-op).
    `resume_step`: events after it (from a run that went on past its last checkpoint) are dropped."""

    def __init__(self, log_dir: Path | None, resume_step: int | None = None):
        self.writer = None
        self.log_dir = log_dir
        if log_dir is None:
            return
        from torch.utils.tensorboard import SummaryWriter  # here: the tensorboard package is optional (vqi2i[tb])

        self.writer = SummaryWriter(str(log_dir), purge_step=None if resume_step is None else resume_step + 1)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def command(self) -> str:
        return f"tensorboard --logdir {self.log_dir}"

    def scalars(self, record: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            tag = f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """An image file (a preview grid) as an image event."""
        if self.writer is None:
            return
        with Image.open(png) as im:
            array = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, array, step, dataformats="HWC")
        self.writer.flush()

    def code_histogram(self, tag: str, counts: torch.Tensor, step: int) -> None:
        """Per-code counts [K] as a histogram over the code ids 0..K-1 (one bucket per code)."""
        if self.writer is None or int(counts.sum()) == 0:
            return
        c = counts.detach().double().cpu()
        ids = torch.arange(len(c), dtype=torch.float64)
        used = (c > 0).nonzero().flatten()
        self.writer.add_histogram_raw(
            tag, min=float(used.min()), max=float(used.max()), num=float(c.sum()), sum=float((ids * c).sum()),
            sum_squares=float((ids * ids * c).sum()), bucket_limits=(ids + 0.5).tolist(), bucket_counts=c.tolist(),
            global_step=step,
        )

    def text(self, tag: str, text: str, step: int) -> None:
        if self.writer is None:
            return
        self.writer.add_text(tag, "".join(f"    {line}\n" for line in text.splitlines()), step)  # markdown code
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
