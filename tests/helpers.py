"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PYTHON = sys.executable


def compose_config(name: str, overrides: list[str]):
    """Compose a primary config the way the scripts do, with their typed schemas registered."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from electra.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def tiny_pretrain_overrides(output_dir: Path, corpus_file: Path, *extra: str) -> list[str]:
    """A tiny from-scratch run on the repetitive corpus: a few seconds, deterministic (one thread)."""
    return [
        "experiment=tiny", "logger=none", "data=text", f"data.path={corpus_file}", f"output_dir={output_dir}",
        "model.vocab_size=200", "model.dropout=0.0", "trainer.block_size=32", "trainer.batch_size=8",
        "trainer.threads=1", "trainer.progress_bar=false", "trainer.log_every_steps=2",
        *extra,
    ]
