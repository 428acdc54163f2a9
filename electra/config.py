"""Typed schema of the pretraining configuration (Hydra group files in ``configs/`` fill it in).

Registered with Hydra's ConfigStore as the base of ``configs/pretrain.yaml``, so an unknown key or a
value of the wrong type, in a YAML file or on the command line, fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from segmentation.schema import DataConfig


@dataclass
class ModelConfig:
    name: str = "tiny"
    objective: str = "rtd"  # rtd | mlm | contrastive
    # Domain-adaptive start: a pretrained encoder directory or hub name; null trains from scratch.
    init_from: str | None = None
    # A generator checkpoint (ElectraForMaskedLM) for init_from runs; null builds a fresh, smaller one.
    generator_init_from: str | None = None
    trust_remote_code: bool = False
    # Discriminator architecture when training from scratch.
    hidden_size: int = 256
    num_layers: int = 12
    num_heads: int = 4
    intermediate_size: int = 1024
    embedding_size: int = 128
    max_position_embeddings: int = 512
    dropout: float = 0.1
    # Dropout on attention probabilities; null = model.dropout. 0 lets PyTorch use its fused (flash)
    # attention kernels, which do not support attention dropout on CPU.
    attention_dropout: float | None = None
    # Tokenizer trained on the corpus when training from scratch.
    vocab_size: int = 30522
    lowercase: bool = True
    # Generator: width as a fraction of the discriminator; depth defaults to the discriminator's.
    generator_size: float = 0.25
    generator_layers: int | None = None
    # Objective.
    disc_weight: float = 50.0
    mask_prob: float = 0.15
    mask_token_prob: float = 0.85
    sampling: str = "gumbel"  # gumbel | multinomial
    temperature: float = 1.0
    embedding_sharing: str = "shared"  # shared | gdes
    # Contrastive (SimCSE) objective: pooling of the sentence embedding and softmax temperature.
    pooling: str = "mean"  # mean | cls
    contrastive_temperature: float = 0.05


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    # Compute budget in training tokens (batch x block x processes x accumulation per step); when set it
    # decides max_steps, so runs with different objectives or scales get the same budget.
    token_budget: int | None = None
    batch_size: int = 32  # sequences per process per micro-batch
    block_size: int = 128  # tokens per packed sequence
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-6
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | bf16 | fp16
    seed: int = 42
    log_every_steps: int = 10
    save_every_steps: int = 500
    keep_last: int = 3
    # false, true (latest checkpoint in output_dir), or a checkpoint directory.
    resume: Any = False
    # Non-finite losses are skipped; this many in a row abort the run.
    max_consecutive_nonfinite: int = 5
    num_workers: int = 0
    compile: bool = False
    fused_adamw: bool = True
    # CPU threads per process; null = cores / local processes.
    threads: int | None = None
    export: bool = True
    progress_bar: bool = True
    # Fault injection for tests: optimizer steps whose loss is replaced by NaN.
    debug_nonfinite_steps: list[int] = field(default_factory=list)
    # Fault injection for tests: hard-exit the process after this many optimizer steps.
    debug_exit_after_step: int | None = None
    # Fault injection for tests: hard-exit half-way through writing this step's checkpoint.
    debug_exit_in_save_at_step: int | None = None


@dataclass
class LoggerConfig:
    backend: str = "wandb"  # wandb | none (metrics.jsonl is always written)
    project: str = "customer-electra"
    mode: str = "offline"  # offline | online | disabled
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    output_dir: str = "outputs/pretrain"


def register_configs() -> None:
    ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)
