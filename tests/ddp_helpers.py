"""Launching a few CPU processes (gloo) the way torchrun does, from a test.

`run_ranks` forks the test process (torch is already imported, so a rank starts in milliseconds) and
calls the `vqi2i` command in each child with torchrun's environment variables; `torchrun` runs the real
launcher as a subprocess. Both return (exit codes or completed process) for the caller to check.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, argv_per_rank: list[list[str]]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    from vqi2i.cli import main

    rc = main([str(a) for a in argv_per_rank[rank]])
    sys.stdout.flush()
    sys.stderr.flush()
    if rc:
        os._exit(rc)  # start_processes reports it as a ProcessExitedException with this exit code


def run_ranks(argv: list, world: int = 2, per_rank: dict[int, list] | None = None) -> None:
    """`vqi2i ARGV` in `world` forked processes (rank r adds per_rank[r]); raises if a rank fails."""
    argvs = [[*argv, *(per_rank or {}).get(r, [])] for r in range(world)]
    mp.start_processes(_rank_main, args=(world, free_port(), argvs), nprocs=world, start_method="fork", join=True)


def torchrun(argv: list, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=NPROC -m vqi2i ARGV` as a subprocess (output captured)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "vqi2i", *[str(a) for a in argv]]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
