"""Fault injection with real processes: kills, corrupt checkpoints, missing models, full or unwritable disks."""

import errno
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from electra.checkpoint import latest_checkpoint
from electra.tracking import read_metrics
from electra.trainer import CheckpointError, pretrain
from segmentation.atomic import OutputError
from tests.helpers import PYTHON, REPO, compose_config, tiny_pretrain_overrides

STEPS = ["trainer.max_steps=12", "trainer.save_every_steps=2", "trainer.log_every_steps=1"]
COMPARED = ("loss", "gen_loss", "disc_loss", "disc_accuracy", "gen_accuracy", "lr", "tokens_seen")


def _pretrain_cmd(out: Path, corpus_file: Path, *extra: str) -> list[str]:
    return [PYTHON, str(REPO / "scripts" / "pretrain.py"), *tiny_pretrain_overrides(out, corpus_file, *STEPS, *extra)]


def _kill_when_step_reached(cmd: list[str], step: int, timeout: float = 240) -> int:
    """Start ``cmd`` and SIGKILL it once metrics.jsonl shows ``step`` (wherever the process is then)."""
    metrics = Path(cmd[cmd.index(next(a for a in cmd if a.startswith("output_dir=")))].split("=", 1)[1]) / "metrics.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and any(r["step"] >= step for r in read_metrics(metrics)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    return proc.wait()


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("straight")
    corpus_file = root / "corpus.txt"
    corpus_file.write_text("\n".join(corpus) + "\n")
    subprocess.run(_pretrain_cmd(root / "run", corpus_file), check=True, capture_output=True, timeout=300)
    return root / "run", corpus_file


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_a_random_step_then_resume_equals_uninterrupted(straight_run, tmp_path, seed):
    straight, corpus_file = straight_run
    kill_at = random.Random(seed).randint(2, 10)
    out = tmp_path / "run"
    code = _kill_when_step_reached(_pretrain_cmd(out, corpus_file), kill_at)
    assert code == -signal.SIGKILL
    subprocess.run(_pretrain_cmd(out, corpus_file, "trainer.resume=true"), check=True, capture_output=True, timeout=300)

    a = load_file(straight / "discriminator" / "model.safetensors")
    b = load_file(out / "discriminator" / "model.safetensors")
    # One thread, same operation order: bitwise equal on CPU (tolerance 0).
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = read_metrics(straight / "metrics.jsonl"), read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in mb] == [m["step"] for m in ma]
    assert [[m[k] for k in COMPARED] for m in mb] == [[m[k] for k in COMPARED] for m in ma]


def test_corrupt_checkpoint_stops_with_advice(tmp_path, corpus_file):
    out = tmp_path / "run"
    subprocess.run(_pretrain_cmd(out, corpus_file, "trainer.max_steps=4"), check=True, capture_output=True,
                   timeout=300)
    latest = latest_checkpoint(out / "checkpoints")
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])  # a torn write
    cfg = compose_config("pretrain", tiny_pretrain_overrides(out, corpus_file, *STEPS, "trainer.max_steps=6",
                                                             "trainer.resume=true"))
    with pytest.raises(CheckpointError, match=r"step-0000004 cannot be loaded.*Resume from an earlier one"):
        pretrain(cfg)


def test_missing_model_directory_is_explained(tmp_path, corpus_file):
    cfg = compose_config("pretrain", tiny_pretrain_overrides(tmp_path / "run", corpus_file, "experiment=dapt",
                                                             f"model.init_from={tmp_path / 'no_model'}"))
    with pytest.raises(FileNotFoundError, match=r"model.init_from=.*no_model.*no such directory"):
        pretrain(cfg)


def test_directory_without_a_model_is_explained(tmp_path, corpus_file):
    (tmp_path / "empty_dir").mkdir()
    cfg = compose_config("pretrain", tiny_pretrain_overrides(tmp_path / "run", corpus_file, "experiment=dapt",
                                                             f"model.init_from={tmp_path / 'empty_dir'}"))
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        pretrain(cfg)


def test_model_and_tokenizer_mismatch_is_explained(tmp_path, tiny_bert_dir):
    from transformers import AutoTokenizer, BertConfig, BertModel

    from segmentation.encoders import TextEncoder

    mixed = tmp_path / "mixed"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(mixed)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(mixed)  # 170 tokens for 50 embeddings
    with pytest.raises(ValueError, match="come from different models"):
        TextEncoder(str(mixed), progress=False).encode(["hello"])


def test_unwritable_output_directory_fails_before_work(tmp_path, corpus_file):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cfg = compose_config("pretrain", tiny_pretrain_overrides(blocker / "run", corpus_file))
    with pytest.raises(OutputError, match="check output_dir|choose a writable output_dir"):
        pretrain(cfg)


# --- segmentation -------------------------------------------------------------------------------------

def _segment_cmd(out: Path, cache: Path) -> list[str]:
    return [PYTHON, str(REPO / "scripts" / "segment.py"), "encoder=tfidf", "encoder.progress=false",
            "encoder.chunk_size=40", "data.synthetic.n_customers=300", f"data.cache_dir={cache}", "cluster.k=6",
            f"output_dir={out}"]


def test_kill_during_encoding_then_rerun_reuses_complete_chunks(tmp_path):
    clean = subprocess.run(_segment_cmd(tmp_path / "clean", tmp_path / "cache_clean"), capture_output=True,
                           text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    env = {**os.environ, "SEGMENTATION_FAULT_EXIT_AFTER_CHUNKS": "3"}
    killed = subprocess.run(_segment_cmd(tmp_path / "run", tmp_path / "cache"), env=env, capture_output=True,
                            timeout=300)
    assert killed.returncode == 137 and not (tmp_path / "run" / "segments.csv").exists()
    rerun = subprocess.run(_segment_cmd(tmp_path / "run", tmp_path / "cache"), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    stats = json.loads((tmp_path / "run" / "summary.json").read_text())["embedding_cache"]
    assert stats["chunks_reused"] == 3 and stats["chunks_encoded"] == 300 // 40 + 1 - 3
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "segments.csv"),
                                  pd.read_csv(tmp_path / "clean" / "segments.csv"))


def test_full_disk_during_a_rerun_keeps_the_earlier_outputs(tmp_path, monkeypatch):
    from segmentation.config import register_configs
    from segmentation.run import run_segmentation

    register_configs()
    overrides = ["encoder=tfidf", "encoder.progress=false", "data.synthetic.n_customers=200",
                 f"data.cache_dir={tmp_path / 'cache'}", "cluster.k=6", f"output_dir={tmp_path / 'out'}"]
    cfg = compose_config("segment", overrides)
    run_segmentation(cfg)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file()}

    real_write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.endswith("report.html"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OutputError, match="no space left while writing .*report.html"):
        run_segmentation(compose_config("segment", overrides + ["seed=1"]))
    monkeypatch.undo()
    assert (tmp_path / "out" / "report.html").read_bytes() == before["report.html"]
    assert not list((tmp_path / "out").glob(".tmp-*"))
