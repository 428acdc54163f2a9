"""Atomic, rotating training checkpoints on top of ``accelerator.save_state``.

A checkpoint is written into ``checkpoints/.tmp-step-NNNNNNN`` and renamed to ``checkpoints/step-NNNNNNN``
only once every process has finished writing and ``trainer_state.json`` is in place. A rename within one
directory is atomic, so a run killed while saving leaves the previous checkpoint as the latest complete
one and the half-written directory is never picked up (it is removed at the next save).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps taken (skipped non-finite steps included)
    tokens_seen: int = 0  # real (non-padding) tokens over all processes
    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0
    # The LR scheduler's state, kept here as JSON: Accelerate would pickle it (and unpickle it at resume).
    scheduler: dict = field(default_factory=dict)


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def complete_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    checkpoints = complete_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def read_state(checkpoint: str | Path) -> TrainerState:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint (no {STATE_FILE}); "
                                "pick another one from the checkpoints/ directory or start without resume")
    try:
        return TrainerState(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path} is corrupt ({err}); resume from an earlier checkpoint") from err


def save_checkpoint(accelerator: Accelerator, directory: str | Path, state: TrainerState, keep_last: int,
                    _fail_midway: bool = False) -> Path:
    """Save model, optimizer, scheduler and RNG states of every process, then publish atomically."""
    directory = Path(directory)
    final = directory / checkpoint_name(state.step)
    tmp = directory / f".tmp-{final.name}"
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    if _fail_midway:  # fault injection: die after the weights, before the checkpoint is complete
        os._exit(137)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state_path = tmp / STATE_FILE
        with open(state_path, "w") as fh:
            json.dump(asdict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():  # a resumed run re-saving the same step
            shutil.rmtree(final)
        os.rename(tmp, final)
        for old in complete_checkpoints(directory)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
