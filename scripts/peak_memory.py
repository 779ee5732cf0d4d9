"""Peak memory of a block of a benchmark, shared by the bench_* scripts (imported from the scripts folder)."""

from __future__ import annotations

import os
import re

import torch


class PeakMemory:
    """Rise of peak memory over a block: CUDA max-allocated, or on Linux CPU the peak resident set
    (VmHWM, reset to VmRSS through /proc/self/clear_refs) over the resident set before it; nan where it
    cannot be measured."""

    def __init__(self, device):
        self.device, self.mb = device, float("nan")

    @staticmethod
    def _status_kb(key: str) -> int:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif os.path.exists("/proc/self/clear_refs"):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set size (VmHWM) to the current one
            self.base = self._status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        elif os.path.exists("/proc/self/clear_refs"):
            self.mb = max(0, self._status_kb("VmHWM") * 1024 - self.base) / 2**20
        return False
