"""Where torch runs: the device a command names (`--device`, `train.device`) and its CPU threads (`--threads`).

Every command that runs a model, the trainers as well as the apps, evaluation and the web app, chooses its
device here, so one word means one device everywhere and an unavailable one is refused the same way.
"""

from __future__ import annotations

import torch

from vqi2i.errors import UserError


def select_device(name: str | None) -> torch.device:
    """'auto' -> cuda when available, else cpu. An unavailable explicit device is a UserError."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' asked for, but MPS is not available on this machine")
    return dev


def set_threads(threads: int | None) -> None:
    """--threads: torch's CPU threads (None keeps torch's choice). On a small busy CPU, 1 is often fastest."""
    if threads is None:
        return
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
