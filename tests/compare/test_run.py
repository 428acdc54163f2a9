"""One job in-process: a pretrained variant is built, recorded with its budget, and reused by the next seed."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from segmentation.compare.config import CompareConfig
from segmentation.compare.run import run_comparison
from segmentation.config import EncoderConfig, EncoderPretrainConfig, PretrainStageConfig
from tests.compare.test_variants import TINY


def tiny_variant_config(data, out, seed: int) -> CompareConfig:
    stage = PretrainStageConfig(experiment="tiny", objective="rtd", token_budget=1024, overrides=list(TINY))
    encoder = EncoderConfig(kind="hf", normalize=False, max_length=32, pretrain=EncoderPretrainConfig(stages=[stage]))
    cfg = CompareConfig(data=data, encoder=encoder, name="scratch_tiny", seed=seed, progress=False, output_dir=str(out))
    cfg.few_shot.shots, cfg.few_shot.draws = 4, 2
    return cfg


def test_pretrained_variant_job_records_its_budget_and_the_next_seed_reuses_it(labelled_data, tmp_path):
    first = run_comparison(tiny_variant_config(labelled_data, tmp_path / "seed0", 0)).metrics
    (record,) = first["pretraining"]
    assert record["cached"] is False and record["token_budget"] == 1024
    assert record["steps"] == 4 and record["tokens_per_step"] == 8 * 32  # 1024 tokens / (8 x 32) per step
    assert first["budget"]["label"] == "rtd 1k tokens" and first["budget"]["steps"] == [4]
    assert first["encoder"] == "scratch_tiny" and first["model"] == record["encoder_dir"]
    assert first["dimension"] == 64  # the tiny model's width
    saved = json.loads((tmp_path / "seed0" / "metrics.json").read_text())
    assert saved["config"]["encoder"]["pretrain"]["stages"][0]["token_budget"] == 1024
    assert OmegaConf.load(tmp_path / "seed0" / "config.yaml").seed == 0

    second = run_comparison(tiny_variant_config(labelled_data, tmp_path / "seed1", 1)).metrics
    assert second["pretraining"][0]["cached"] is True
    assert {k: v for k, v in second["pretraining"][0].items() if k != "cached"} == \
        {k: v for k, v in record.items() if k != "cached"}
    assert second["linear_probe"] == first["linear_probe"]  # same embeddings, deterministic probe


def test_anisotropy_correction_is_refused(labelled_data, tmp_path):
    cfg = CompareConfig(data=labelled_data, encoder=EncoderConfig(kind="tfidf", dominant_share=0.25),
                        output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="encoder.dominant_share=null"):
        run_comparison(cfg)
