"""Make ``accelerate launch --cpu --num_processes N`` start N processes.

accelerate 1.16 ignores ``--num_processes`` when ``--cpu`` is given (its CPU path expects MPI) and starts
one process with ``MASTER_ADDR`` set, which would silently train on one process. When the training script
finds itself in that situation it re-executes itself under ``torch.distributed.run`` (PyTorch's own
launcher, which ``accelerate launch --multi_gpu`` uses too) with the requested number of processes.
The shipped ``configs/accelerate/cpu_2proc.yaml`` reaches the same launcher without this shim.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _parent_num_processes() -> int | None:
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # not Linux: nothing to inspect
        return None
    if not any(Path(a).name == "accelerate" or a.endswith("accelerate/commands/launch.py") for a in argv[:3]):
        return None
    for i, arg in enumerate(argv):
        for flag in ("--num_processes", "--num-processes"):
            if arg == flag and i + 1 < len(argv) and argv[i + 1].isdigit():
                return int(argv[i + 1])
            if arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
                return int(value) if value.isdigit() else None
    return None


def relaunch_if_cpu_processes_ignored() -> None:
    """Re-exec under torchrun when accelerate's CPU launcher dropped a multi-process request."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1"):
        return
    if "WORLD_SIZE" in os.environ or "MASTER_ADDR" not in os.environ:
        return
    requested = _parent_num_processes()
    if not requested or requested < 2:
        return
    port = os.environ.get("MASTER_PORT", "29500")
    print(f"accelerate started 1 CPU process for --num_processes {requested}; relaunching with "
          f"torch.distributed.run --nproc_per_node {requested}", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={requested}",
                              f"--master_port={port}", sys.argv[0], *sys.argv[1:]])
