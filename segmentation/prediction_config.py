"""Typed schemas of the prediction entry points: ``scripts/predict.py``, ``scripts/migrate.py``, ``scripts/finetune.py``.

Registered with Hydra's ConfigStore (``predict_schema``, ``migrate_schema``, ``finetune_schema``) as the
first default of ``configs/predict.yaml``, ``configs/migrate.yaml`` and ``configs/finetune.yaml``, so an
unknown key or a wrong type fails before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from segmentation.config import FeatureConfig, ProfileConfig
from segmentation.schema import DataConfig


@dataclass
class PredictConfig:
    """Score a table of customers with a saved model (``segmentation.scoring.score_file``)."""

    model_dir: str = "???"
    input: str = "???"
    output: str = "???"
    format: str = "auto"  # auto | csv | parquet | jsonl
    # Rows read, validated, scored and written at a time: memory is bounded by this, not by the input.
    chunk_size: int = 2048
    # Recommended products per customer; null = the model's recommend.top_k.
    top_k: int | None = None
    # Keep only rows where column == value.
    filters: dict[str, Any] = field(default_factory=dict)
    # null = the settings of the data the model was fitted on.
    missing_numeric: str | None = None
    max_text_chars: int | None = None
    # Embedding cache for Hugging Face encoders (null: none; scoring reads each customer once).
    cache_dir: str | None = None
    progress: bool = True
    # Where config.yaml and the log go: the output file's directory by default.
    output_dir: str = "."


@dataclass
class DynamicsConfig:
    """Migration between two snapshots (``segmentation.dynamics``)."""

    # A customer of the later snapshot is far from every segment beyond this quantile of the earlier
    # snapshot's distances to their centre.
    emerging_quantile: float = 0.99
    # Re-fit when the drift score (largest mean |change| of a segment's standardised differences) or the
    # share of far customers exceeds these.
    refit_threshold: float = 0.25
    max_emerging_share: float = 0.05
    # Re-fit the model on the later snapshot when a threshold is exceeded (written to output_dir/model).
    refit: bool = True
    top_changes: int = 3


@dataclass
class MigrateConfig:
    model_dir: str = "???"
    data: DataConfig = field(default_factory=DataConfig)
    # Files of the two snapshots; null = the configured data set (data.path, or the synthetic set).
    before: str | None = None
    after: str | None = None
    # Rows of each snapshot (replace data.filters); the synthetic set's snapshots are snapshot 0 and 1.
    before_filters: dict[str, Any] = field(default_factory=lambda: {"snapshot": 0})
    after_filters: dict[str, Any] = field(default_factory=lambda: {"snapshot": 1})
    # A column of the later snapshot that says who really moved (the synthetic set's "moved"), for scores.
    moved_column: str | None = "moved"
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    title: str = "Customer segments"
    seed: int = 0
    output_dir: str = "outputs/migrate"


@dataclass
class FinetuneTrainerConfig:
    learning_rate: float = 1e-4
    # lr(depth) = learning_rate * layer_decay ** (num_layers + 1 - depth): head 1x, embeddings the least.
    layer_decay: float = 0.8
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-6
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_length: int = 128
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    # Early stopping on the validation split: stop after `patience` epochs without improvement.
    early_stopping_metric: str = "macro_f1"  # macro_f1 | loss
    patience: int = 2
    min_delta: float = 0.0
    # Validation rows carved from the training rows (stratified); test rows: the data's test split, else
    # test_size of the rows.
    validation_size: float = 0.1
    test_size: float = 0.2
    class_weight: str | None = None  # null | balanced
    seed: int = 0
    threads: int | None = None
    progress_bar: bool = True


@dataclass
class FinetuneConfig:
    data: DataConfig = field(default_factory=DataConfig)
    # The encoder to fine-tune (Hugging Face directory or hub name); null = model_dir's encoder.
    encoder_path: str | None = None
    # A fitted model directory (DIR/model of scripts/segment.py): its profile builder writes the texts and,
    # with register=true, the fine-tuned head replaces the frozen head of the same target for scoring.
    model_dir: str | None = None
    register: bool = True
    target: str = "next_category"
    basket_column: str = "next_categories"
    label_separator: str = ";"
    split: str | None = None
    # Profiles when there is no model_dir.
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    trainer: FinetuneTrainerConfig = field(default_factory=FinetuneTrainerConfig)
    trust_remote_code: bool = False
    output_dir: str = "outputs/finetune"


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="migrate_schema", node=MigrateConfig)
    store.store(name="finetune_schema", node=FinetuneConfig)
    # ${parent:PATH}: the directory of a file, so that predict.py's run files land beside its output.
    if not OmegaConf.has_resolver("parent"):
        OmegaConf.register_new_resolver("parent", lambda path: str(Path(str(path)).parent))
