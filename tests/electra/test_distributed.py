"""Real multi-process training on CPU through `accelerate launch` (slow, but runs in CI)."""

import os
import subprocess
from pathlib import Path

import pytest

from electra.tracking import read_metrics
from tests.helpers import REPO, tiny_pretrain_overrides

ACCELERATE = str(Path(os.sys.executable).with_name("accelerate"))


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [
    ["--cpu", "--num_processes", "2"],  # the documented command; accelerate alone would start one process
    ["--config_file", str(REPO / "configs" / "accelerate" / "cpu_2proc.yaml")],
], ids=["cpu-flag", "config-file"])
def test_two_process_cpu_training(tmp_path, corpus_file, launcher):
    out = tmp_path / "run"
    cmd = [ACCELERATE, "launch", *launcher, "--main_process_port", str(29500 + len(launcher)),
           str(REPO / "scripts" / "pretrain.py"),
           *tiny_pretrain_overrides(out, corpus_file, "trainer.max_steps=6", "trainer.save_every_steps=3")]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = read_metrics(out / "metrics.jsonl")
    assert metrics and all(m["world_size"] == 2 for m in metrics)
    assert metrics[-1]["step"] == 6
    assert (out / "discriminator" / "model.safetensors").is_file()
    # Both processes wrote their RNG state into the same checkpoint.
    assert {p.name for p in (out / "checkpoints" / "step-0000006").glob("random_states_*.pkl")} == {
        "random_states_0.pkl", "random_states_1.pkl"}
