"""Typed schema of the comparison harness (``configs/compare.yaml``), registered as ``compare_schema``."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from segmentation.config import EncoderConfig
from segmentation.schema import DataConfig


@dataclass
class ClusteringProtocolConfig:
    """K-Means with k = number of labels in the test split, scored against the labels."""

    # kmeans (scikit-learn KMeans, k-means++, one initialisation) | minibatch_kmeans (as MTEB's clustering tasks)
    algorithms: list[str] = field(default_factory=lambda: ["kmeans", "minibatch_kmeans"])
    # null: the number of distinct labels in the test split.
    k: int | None = None
    n_init: int = 1
    minibatch_size: int = 500
    # Cluster directions, not lengths.
    l2_normalize: bool = True


@dataclass
class ProbeConfig:
    """Logistic regression on frozen embeddings; ``shots`` > 0 trains on that many examples per label."""

    enabled: bool = True
    C: float = 1.0
    max_iter: int = 100
    l2_normalize: bool = False
    # Few-shot: examples per label drawn from the training split, and how many independent draws.
    shots: int | None = None
    draws: int = 1


def _full_probe() -> ProbeConfig:
    return ProbeConfig(C=10.0, max_iter=1000, l2_normalize=False)


def _few_shot_probe() -> ProbeConfig:
    return ProbeConfig(C=1.0, max_iter=100, l2_normalize=True, shots=8, draws=10)


@dataclass
class CompareConfig:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # The encoder's name in results; null = the chosen encoder config (encoder=NAME), else "encoder".
    name: str | None = None
    # Evaluation seed: clustering initialisation and few-shot draws. Representations do not depend on it.
    seed: int = 0
    # Representation seed: TF-IDF's SVD and every pretraining run (part of the pretrained-encoder cache key).
    encoder_seed: int = 0
    # Training tokens shared by the pretrained variants (their encoder configs read it).
    token_budget: int = 300000
    # Ground truth; null = the first of data.schema.label_columns present in the data.
    label_column: str | None = None
    # Split rule for a table without a test split: a stratified share of the rows, drawn with split_seed.
    test_fraction: float | None = None
    split_seed: int = 0
    clustering: ClusteringProtocolConfig = field(default_factory=ClusteringProtocolConfig)
    linear_probe: ProbeConfig = field(default_factory=_full_probe)
    few_shot: ProbeConfig = field(default_factory=_few_shot_probe)
    progress: bool = True
    output_dir: str = "outputs/compare"


def register_configs() -> None:
    from electra.config import register_configs as register_pretrain_configs

    ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
    register_pretrain_configs()  # pretrained variants compose configs/pretrain.yaml
