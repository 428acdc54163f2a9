"""Fine-tuning (Head 2): the documented learning rate per layer, a toy task learned, export, registration for scoring."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from segmentation.finetune import (TextExamples, finetune, layer_depth, layerwise_lr_groups, predict_texts,
                                   train_classifier)
from segmentation.prediction_config import FinetuneTrainerConfig
from segmentation.scoring import ScoringPipeline
from segmentation.targets import Target
from tests.prediction.conftest import N_CUSTOMERS, compose_entry


def _learning_rates(groups) -> dict[str, float]:
    return {name: group["lr"] for group in groups for name in group["names"]}


def test_layerwise_decay_gives_each_layer_the_documented_rate(tiny_electra_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_electra_dir, num_labels=3)
    groups = layerwise_lr_groups(model, learning_rate=1e-3, layer_decay=0.5, weight_decay=0.01)
    rates = _learning_rates(groups)
    assert set(rates) == {name for name, _ in model.named_parameters()}
    # Two layers: lr * 0.5 ** (2 + 1 - depth); embeddings depth 0, layer i depth i + 1, head depth 3.
    expected = {0: 1e-3 * 0.5 ** 3, 1: 1e-3 * 0.5 ** 2, 2: 1e-3 * 0.5, 3: 1e-3}
    for name, rate in rates.items():
        if name.startswith("electra.embeddings"):  # embeddings and the projection to the hidden size
            depth = 0
        elif name.startswith("electra.encoder.layer."):
            depth = int(name.split(".")[3]) + 1
        else:
            assert name.startswith("classifier."), name
            depth = 3
        assert rate == pytest.approx(expected[depth], rel=1e-12), name
    assert rates["electra.embeddings_project.weight"] == pytest.approx(1.25e-4)
    assert rates["electra.encoder.layer.1.output.dense.weight"] == pytest.approx(5e-4)
    assert rates["classifier.out_proj.weight"] == pytest.approx(1e-3)
    decay = {name: group["weight_decay"] for group in groups for name in group["names"]}
    assert decay["electra.encoder.layer.0.attention.output.LayerNorm.weight"] == 0.0
    assert decay["classifier.dense.bias"] == 0.0 and decay["classifier.dense.weight"] == 0.01


def test_pooler_counts_as_head_and_decay_one_is_uniform(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    rates = _learning_rates(layerwise_lr_groups(model, 2e-4, 0.8))
    assert rates["bert.pooler.dense.weight"] == rates["classifier.weight"] == pytest.approx(2e-4)
    assert rates["bert.embeddings.word_embeddings.weight"] == pytest.approx(2e-4 * 0.8 ** 3)
    assert set(_learning_rates(layerwise_lr_groups(model, 2e-4, 1.0)).values()) == {2e-4}
    assert layer_depth("model.encoder.layers.11.mlp.weight", 12) == 12
    with pytest.raises(ValueError, match="layer_decay must lie in"):
        layerwise_lr_groups(model, 2e-4, 0.0)


# Two classes, each with its own words plus two words drawn from both: separable, chance = 1/2.
TOY_WORDS = [["laptop", "wireless", "mouse", "red"], ["garden", "tools", "seeds", "patio"]]


def _toy(n: int, seed: int) -> TextExamples:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = [" ".join(rng.choice(TOY_WORDS[c], 5)) + " " + " ".join(rng.choice(sum(TOY_WORDS, []), 2)) for c in labels]
    return TextExamples(texts, labels)


def test_finetuning_a_tiny_encoder_beats_chance_on_a_separable_task(tiny_electra_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, validation = _toy(80, 0), _toy(40, 1)
    config = FinetuneTrainerConfig(learning_rate=3e-3, layer_decay=0.8, epochs=8, batch_size=16, max_length=32,
                                   patience=3, progress_bar=False, threads=1)
    trained = train_classifier(str(tiny_electra_dir), Target("toy", "multiclass", "toy"), ["a", "b"], train,
                               validation, config, metrics_path=tmp_path / "metrics.jsonl")
    best = max(trained.history, key=lambda r: r["val_macro_f1"])
    assert best["val_accuracy"] >= 0.9  # chance: 1/2
    # The best epoch's weights are the ones kept.
    proba = predict_texts(trained.model, trained.tokenizer, validation.texts, multilabel=False, max_length=32)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(proba.argmax(axis=1) == validation.labels) == pytest.approx(
        trained.history[trained.best_epoch - 1]["val_accuracy"])
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(trained.history)
    trained.model.save_pretrained(tmp_path / "export")
    trained.tokenizer.save_pretrained(tmp_path / "export")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "export")
    assert reloaded.config.id2label == {0: "a", 1: "b"}
    again = predict_texts(reloaded, AutoTokenizer.from_pretrained(tmp_path / "export"), validation.texts, False, 32)
    np.testing.assert_allclose(again, proba, atol=1e-6)


def test_finetune_registers_its_head_for_scoring(fitted_run, tiny_bert_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(fitted_run.model_dir, model_dir)
    cfg = compose_entry("finetune", [f"encoder_path={tiny_bert_dir}", f"model_dir={model_dir}",
                                     f"data.synthetic.n_customers={N_CUSTOMERS}", f"data.cache_dir={fitted_run.cache}",
                                     "target=next_category", "trainer.epochs=1", "trainer.max_length=64",
                                     "trainer.progress_bar=false", "trainer.threads=1", f"output_dir={tmp_path / 'ft'}"])
    result = finetune(cfg)
    metrics = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert metrics["rows"]["test"] == fitted_run.run.pipeline.labels_.size - sum(
        metrics["rows"][k] for k in ("train", "validation"))
    assert len(metrics["history"]) == 1 and metrics["best_epoch"] == 1
    assert metrics["test"]["n"] == metrics["rows"]["test"] and len(metrics["test"]["classes"]) == 10
    assert sorted(p.name for p in (tmp_path / "ft" / "model").iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    manifest = json.loads((model_dir / "needs" / "manifest.json").read_text())
    assert manifest["heads"]["next_category"]["kind"] == "finetuned"
    assert not (model_dir / "needs" / "next_category.skops").exists()
    assert result.registered == model_dir / "needs" / "next_category.finetuned"
    scorer = ScoringPipeline.load(model_dir, progress=False)
    scored = scorer.score(fitted_run.customers[fitted_run.customers.snapshot == 1].iloc[:5])
    classes = [c for c in scored.columns if c.startswith("need.next_category.")]
    assert len(classes) == 10
    np.testing.assert_allclose(scored[classes].sum(axis=1), 1.0, atol=1e-5)
    assert scored.recommended_products.str.count(";").eq(2).all()
    scorer.save(tmp_path / "copy")  # the fine-tuned model travels with the model directory
    assert (tmp_path / "copy" / "needs" / "next_category.finetuned" / "model.safetensors").is_file()
    copied = ScoringPipeline.load(tmp_path / "copy", progress=False)
    sample = fitted_run.customers[fitted_run.customers.snapshot == 1].iloc[:5]
    np.testing.assert_allclose(copied.score(sample)[classes], scored[classes])


@pytest.mark.slow
def test_finetune_under_two_cpu_processes(tiny_bert_dir, tmp_path):
    """The same `accelerate launch` path as pretraining: two processes, one exported model."""
    import os
    import subprocess
    from pathlib import Path

    from tests.helpers import REPO

    accelerate = str(Path(os.sys.executable).with_name("accelerate"))
    out = tmp_path / "ft"
    cmd = [accelerate, "launch", "--config_file", str(REPO / "configs" / "accelerate" / "cpu_2proc.yaml"),
           "--main_process_port", "29517", str(REPO / "scripts" / "finetune.py"), f"encoder_path={tiny_bert_dir}",
           "data.synthetic.n_customers=200", f"data.cache_dir={tmp_path / 'cache'}", "target=true_segment",
           "trainer.epochs=2", "trainer.batch_size=16", "trainer.max_length=48", "trainer.progress_bar=false",
           "trainer.threads=1", f"output_dir={out}"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "finetune.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 2
    # Validation predictions are gathered from both processes: every validation row counted once.
    assert [r["val_n"] for r in metrics["history"]] == [metrics["rows"]["validation"]] * 2
    assert metrics["test"]["n"] == metrics["rows"]["test"]
    assert (out / "model" / "model.safetensors").is_file()
    assert proc.stdout.count("true_segment: test accuracy") == 1  # printed by the main process only
