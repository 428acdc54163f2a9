"""Shared fixtures: everything is built locally (tiny models, a tokenizer trained here); no hub, no network."""

from __future__ import annotations

import os
from pathlib import Path

# Before transformers/datasets/wandb are imported anywhere: never reach for a hub or an account.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Sleeping OpenMP workers: spinning ones make scikit-learn many times slower on 2 cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

REPETITIVE_CORPUS = [
    "the customer ordered a red laptop and a wireless mouse",
    "please refund my order the parcel arrived damaged",
    "great price fast delivery will buy again",
    "the running shoes are light and comfortable for the trail",
    "my card was charged twice for the same order",
    "garden tools and seeds for the new patio",
] * 40


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    """Datasets' cache in a per-session directory, so tests neither read nor litter the user's cache."""
    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    os.environ["HF_DATASETS_CACHE"] = str(cache)
    import datasets

    datasets.config.HF_DATASETS_CACHE = cache
    yield


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return list(REPETITIVE_CORPUS)


@pytest.fixture(scope="session")
def tokenizer(corpus):
    from electra.tokenizer import train_wordpiece

    return train_wordpiece(corpus, vocab_size=200, model_max_length=64)


def _tiny_electra_config(tokenizer, **overrides):
    from transformers import ElectraConfig

    values = dict(vocab_size=len(tokenizer), embedding_size=16, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                  pad_token_id=tokenizer.pad_token_id, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return ElectraConfig(**values)


@pytest.fixture
def tiny_model_config():
    from electra.config import ModelConfig

    return ModelConfig(name="test", hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                       embedding_size=16, max_position_embeddings=64, vocab_size=200, dropout=0.0)


@pytest.fixture(scope="session")
def tiny_electra_dir(tmp_path_factory, tokenizer) -> Path:
    """A pretrained-style ELECTRA discriminator directory (ElectraForPreTraining + tokenizer)."""
    import torch
    from transformers import ElectraForPreTraining

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_electra")
    ElectraForPreTraining(_tiny_electra_config(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, tokenizer) -> Path:
    """A BERT-family encoder directory (like all-MiniLM-L6-v2: BertModel weights, no RTD head)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_bert")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def corpus_file(tmp_path, corpus) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus) + "\n")
    return path
