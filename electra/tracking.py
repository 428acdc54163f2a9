"""Metrics: always a ``metrics.jsonl`` in the run directory, plus wandb (offline by default) through Accelerate."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from electra.config import LoggerConfig


class MetricsLog:
    """Appends one JSON object per logged step; on resume, drops lines past the checkpoint's step."""

    def __init__(self, path: str | Path, accelerator: Accelerator, resume_step: int | None = None):
        self.path = Path(path)
        self.accelerator = accelerator
        if accelerator.is_main_process:
            if resume_step is None:
                self.path.write_text("")
            elif self.path.exists():
                kept = [line for line in self.path.read_text().splitlines()
                        if line.strip() and json.loads(line)["step"] <= resume_step]
                self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if not self.accelerator.is_main_process:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def tracker_kwargs(cfg: LoggerConfig) -> dict[str, Any]:
    """``log_with`` for ``Accelerator``: wandb or nothing."""
    if cfg.backend == "none":
        return {}
    if cfg.backend != "wandb":
        raise ValueError(f"unknown logger.backend {cfg.backend!r}; use 'wandb' or 'none'")
    return {"log_with": "wandb"}


def start_tracking(accelerator: Accelerator, cfg: LoggerConfig, run_dir: Path, config: dict, run_name: str) -> None:
    if cfg.backend == "none":
        return
    id_file = run_dir / ".wandb_id"
    if accelerator.is_main_process:
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id)
        init = {"mode": cfg.mode, "dir": str(run_dir), "name": run_name, "id": run_id, "resume": "allow",
                "tags": list(cfg.tags)}
        if cfg.entity:
            init["entity"] = cfg.entity
        accelerator.init_trackers(cfg.project, config=config, init_kwargs={"wandb": init})
