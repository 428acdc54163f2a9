"""Shared fixtures of the prediction tests: one small fitted model directory (TF-IDF, synthetic customers)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before scikit-learn or torch load OpenMP

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import CONFIGS  # noqa: E402

N_CUSTOMERS = 500
TARGETS = "[next_category,multilabel:next_categories,will_buy:electronics]"


def compose_segment(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from segmentation.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="segment", overrides=overrides)


def compose_entry(name: str, overrides: list[str]):
    """predict / migrate / finetune configs, composed as their scripts compose them."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from segmentation.prediction_config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@dataclass
class FittedRun:
    out: Path
    cache: Path
    run: object  # segmentation.run.SegmentationRun
    customers: pd.DataFrame  # both snapshots, every column

    @property
    def model_dir(self) -> Path:
        return self.out / "model"


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory) -> FittedRun:
    """scripts/segment.py's run on 500 synthetic customers: TF-IDF, k=6, three need targets, recommendations."""
    from segmentation.run import run_segmentation
    from segmentation.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("fitted")
    cfg = compose_segment(["encoder=tfidf", "encoder.progress=false", "encoder.n_components=32",
                           f"data.synthetic.n_customers={N_CUSTOMERS}", f"data.cache_dir={root / 'cache'}",
                           "cluster.k=6", f"needs.targets={TARGETS}", "needs.few_shot.shots=[1,4,16]",
                           "needs.few_shot.repeats=2", f"output_dir={root / 'out'}"])
    run = run_segmentation(cfg)
    return FittedRun(root / "out", root / "cache", run, make_synthetic(n_customers=N_CUSTOMERS, seed=0).customers)
