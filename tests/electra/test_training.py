"""The training loop end to end on tiny models: learning, resume, checkpoints, non-finite losses, export."""

import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, ElectraForPreTraining

from electra.checkpoint import complete_checkpoints, latest_checkpoint, read_state
from electra.modeling import export_checkpoint
from electra.tracking import read_metrics
from electra.trainer import NonFiniteLossError, pretrain
from tests.helpers import PYTHON, REPO, compose_config, tiny_pretrain_overrides


def _run(tmp_path, corpus_file, *extra, name="run"):
    cfg = compose_config("pretrain", tiny_pretrain_overrides(tmp_path / name, corpus_file, *extra))
    return pretrain(cfg)


def _script(out_dir, corpus_file, *extra, check=True):
    cmd = [PYTHON, str(REPO / "scripts" / "pretrain.py"), *tiny_pretrain_overrides(out_dir, corpus_file, *extra)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_tiny_run_learns(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=40", "trainer.learning_rate=3e-3", "trainer.warmup_steps=4")
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    first, last = metrics[0], metrics[-1]
    assert [m["step"] for m in metrics] == list(range(2, 41, 2))
    assert last["loss"] < 0.7 * first["loss"]
    assert last["gen_loss"] < first["gen_loss"]
    assert last["disc_accuracy"] > first["disc_accuracy"]
    assert last["world_size"] == 1 and last["tokens_per_s"] > 0
    for key in ("step", "loss", "gen_loss", "disc_loss", "tokens_per_s"):
        assert key in last
    assert (result.run_dir / "config.yaml").is_file()
    assert [p.name for p in complete_checkpoints(result.run_dir / "checkpoints")] == ["step-0000030", "step-0000040"]


def test_export_reloads_with_plain_auto_classes(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=4")
    disc_dir = result.exported["discriminator"]
    assert disc_dir == result.run_dir / "discriminator" and (disc_dir / "model.safetensors").is_file()
    model, tok = AutoModel.from_pretrained(disc_dir), AutoTokenizer.from_pretrained(disc_dir)
    batch = tok(["great price fast delivery"], return_tensors="pt")
    trained = result.run_dir
    full = ElectraForPreTraining.from_pretrained(disc_dir)  # the RTD head travels with the discriminator
    with torch.no_grad():
        assert torch.allclose(model(**batch).last_hidden_state, full.electra(**batch).last_hidden_state)
    generator = AutoModel.from_pretrained(result.exported["generator"])
    assert generator.config.hidden_size == 16  # 1/4 of the tiny discriminator's 64
    # Re-exporting the last checkpoint gives the same weights as the end-of-run export.
    again = export_checkpoint(trained, output_dir=tmp_path / "again")
    a, b = load_file(disc_dir / "model.safetensors"), load_file(again["discriminator"] / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, corpus_file):
    common = ["trainer.max_steps=12", "trainer.save_every_steps=4"]
    _script(tmp_path / "straight", corpus_file, *common)
    killed = _script(tmp_path / "resumed", corpus_file, *common, "trainer.debug_exit_after_step=7", check=False)
    assert killed.returncode == 137
    assert latest_checkpoint(tmp_path / "resumed" / "checkpoints").name == "step-0000004"
    _script(tmp_path / "resumed", corpus_file, *common, "trainer.resume=true")

    straight = load_file(tmp_path / "straight" / "discriminator" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "discriminator" / "model.safetensors")
    # Same threads, same order of operations: equal to the bit on CPU.
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    m1 = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    m2 = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [m["step"] for m in m2] == [m["step"] for m in m1]
    assert [m["loss"] for m in m2] == [m["loss"] for m in m1]


def test_kill_while_saving_leaves_previous_checkpoint(tmp_path, corpus_file):
    common = ["trainer.max_steps=8", "trainer.save_every_steps=4"]
    proc = _script(tmp_path / "run", corpus_file, *common, "trainer.debug_exit_in_save_at_step=8", check=False)
    assert proc.returncode == 137
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / ".tmp-step-0000008").is_dir()  # the half-written one ...
    assert latest_checkpoint(checkpoints).name == "step-0000004"  # ... is never picked up
    assert read_state(latest_checkpoint(checkpoints)).step == 4
    result = _run(tmp_path, corpus_file, *common, "trainer.resume=true", name="run")
    assert result.state.step == 8
    assert not (checkpoints / ".tmp-step-0000008").exists()


def test_resume_true_without_checkpoint_starts_fresh(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=2", "trainer.resume=true")
    assert result.state.step == 2


def test_resume_from_missing_path_fails(tmp_path, corpus_file):
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        _run(tmp_path, corpus_file, "trainer.max_steps=2", f"trainer.resume={tmp_path / 'nowhere'}")


def test_nonfinite_loss_is_skipped_and_counted(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=6", "trainer.debug_nonfinite_steps=[3]")
    assert result.state.step == 6 and result.state.nonfinite_total == 1
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    assert metrics[-1]["nonfinite_total"] == 1
    assert all(isinstance(m["loss"], float) for m in metrics)  # the bad step does not poison the averages


def test_consecutive_nonfinite_losses_abort_with_advice(tmp_path, corpus_file):
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive non-finite losses at step 5.*learning_rate"):
        _run(tmp_path, corpus_file, "trainer.max_steps=10", "trainer.debug_nonfinite_steps=[3,4,5]",
             "trainer.max_consecutive_nonfinite=3")


def test_skipped_step_leaves_weights_unchanged(tmp_path, corpus_file):
    a = _run(tmp_path, corpus_file, "trainer.max_steps=2", "trainer.export=true", name="a")
    b = _run(tmp_path, corpus_file, "trainer.max_steps=3", "trainer.debug_nonfinite_steps=[3]", name="b")
    wa = load_file(a.exported["discriminator"] / "model.safetensors")
    wb = load_file(b.exported["discriminator"] / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("fixture", ["tiny_electra_dir", "tiny_bert_dir"])
def test_domain_adaptive_start_from_pretrained_encoder(tmp_path, corpus_file, fixture, request):
    source = request.getfixturevalue(fixture)
    result = _run(tmp_path, corpus_file, "experiment=dapt", f"model.init_from={source}", "trainer.max_steps=3",
                  "trainer.warmup_steps=1", "trainer.learning_rate=1e-4")
    exported = AutoModel.from_pretrained(result.exported["discriminator"])
    original = AutoModel.from_pretrained(source)
    assert type(exported) is type(original)
    # Its tokenizer is reused, and training started from its weights (a few small steps away).
    assert (result.run_dir / "tokenizer" / "tokenizer.json").read_text() == (source / "tokenizer.json").read_text()
    before, after = original.state_dict(), exported.state_dict()
    delta = max((before[k] - after[k]).abs().max().item() for k in before if k in after)
    assert 0 < delta < 0.05
    generator = json.loads((result.exported["generator"] / "config.json").read_text())
    assert generator["embedding_size"] == original.config.hidden_size if fixture == "tiny_bert_dir" else True


def test_gdes_run_exports_materialized_embeddings(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=3", "model.embedding_sharing=gdes")
    weights = load_file(result.exported["discriminator"] / "model.safetensors")
    assert "electra.embeddings.word_embeddings.weight" in weights
    assert not any("delta" in k or "shared" in k for k in weights)


def test_mlm_objective_trains_and_exports_encoder(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=4", "model.objective=mlm")
    assert set(result.exported) == {"encoder"}
    assert AutoModel.from_pretrained(result.exported["encoder"]).config.hidden_size == 64
    assert read_metrics(result.run_dir / "metrics.jsonl")[-1]["disc_loss"] == 0.0


def test_too_little_data_is_explained(tmp_path):
    tiny = tmp_path / "c.txt"
    tiny.write_text("just one line\n")
    with pytest.raises(ValueError, match="fewer than one optimizer step needs"):
        _run(tmp_path, tiny, "trainer.max_steps=2")


def test_multirun_sweep_writes_one_run_directory_per_job(tmp_path, corpus_file):
    cmd = [PYTHON, str(REPO / "scripts" / "pretrain.py"), "-m",
           *tiny_pretrain_overrides(tmp_path / "sweep", corpus_file, "trainer.max_steps=1,2", "trainer.export=false")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(runs) == 2
    assert [read_metrics(r / "metrics.jsonl")[-1]["step"] for r in runs] == [1, 2]
    assert all((r / "config.yaml").is_file() for r in runs)


@pytest.mark.slow
def test_wandb_logs_offline_into_the_run_directory(tmp_path, corpus_file, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    result = _run(tmp_path, corpus_file, "logger=wandb", "trainer.max_steps=2", "trainer.export=false")
    runs = list((result.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and (result.run_dir / ".wandb_id").is_file()


def test_contrastive_step_through_the_same_loop(tmp_path, corpus_file, tiny_bert_dir):
    result = _run(tmp_path, corpus_file, "experiment=contrastive", f"model.init_from={tiny_bert_dir}",
                  "trainer.max_steps=3", "trainer.batch_size=8")
    metrics = read_metrics(result.run_dir / "metrics.jsonl")
    assert "contrastive_accuracy" in metrics[-1] and metrics[-1]["world_size"] == 1
    assert set(result.exported) == {"encoder"}
    assert type(AutoModel.from_pretrained(result.exported["encoder"])).__name__ == "BertModel"


def test_token_budget_sets_the_number_of_steps(tmp_path, corpus_file):
    # 8 sequences x 32 tokens = 256 tokens per step: 1000 tokens -> 4 steps.
    result = _run(tmp_path, corpus_file, "trainer.token_budget=1000", "trainer.max_steps=99", "trainer.export=false")
    assert result.state.step == 4
    from omegaconf import OmegaConf

    assert OmegaConf.load(result.run_dir / "config.yaml").trainer.max_steps == 4


def test_domain_adaptive_start_from_a_generator_checkpoint(tmp_path, corpus_file, tiny_electra_dir, tokenizer):
    from transformers import ElectraConfig, ElectraForMaskedLM

    torch.manual_seed(1)
    generator_dir = tmp_path / "generator"
    generator = ElectraForMaskedLM(ElectraConfig(vocab_size=len(tokenizer), embedding_size=16, hidden_size=8,
                                                 num_hidden_layers=1, num_attention_heads=1, intermediate_size=16,
                                                 max_position_embeddings=64))
    generator.save_pretrained(generator_dir)
    result = _run(tmp_path, corpus_file, "experiment=dapt", f"model.init_from={tiny_electra_dir}",
                  f"model.generator_init_from={generator_dir}", "trainer.max_steps=1", "trainer.learning_rate=1e-9",
                  "trainer.warmup_steps=0")
    exported = load_file(result.exported["generator"] / "model.safetensors")
    original = generator.state_dict()
    layer = "electra.encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(exported[layer], original[layer], atol=1e-6)  # its own body ...
    disc = load_file(result.exported["discriminator"] / "model.safetensors")
    assert torch.allclose(exported["electra.embeddings.word_embeddings.weight"],
                          disc["electra.embeddings.word_embeddings.weight"])  # ... the discriminator's embeddings


def test_bf16_and_gradient_accumulation(tmp_path, corpus_file):
    result = _run(tmp_path, corpus_file, "trainer.max_steps=2", "trainer.mixed_precision=bf16",
                  "trainer.gradient_accumulation_steps=2", "trainer.export=false")
    last = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    assert result.state.step == 2 and torch.isfinite(torch.tensor(last["loss"]))
    # Two micro-batches of 8 blocks of 32 tokens per optimizer step; only the corpus' last block has padding.
    assert 0.97 * (2 * 2 * 8 * 32) <= last["tokens_seen"] <= 2 * 2 * 8 * 32
