"""Shared fixtures of the segmentation tests: small synthetic tables and a tiny Hugging Face encoder built locally."""

from __future__ import annotations

import os

# As in scripts/segment.py: sleeping OpenMP workers, or K-Means is many times slower on 2 cores. Only
# effective when no other module loaded scikit-learn's OpenMP runtime first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from segmentation.schema import DataConfig, SchemaConfig, SyntheticConfig  # noqa: E402
from segmentation.synthetic import make_synthetic  # noqa: E402

SYNTHETIC_SCHEMA = dict(
    id_column="customer_id",
    text_columns=["review", "support_message", "search_queries"],
    categorical_columns=["gender", "region", "payment_method", "channel"],
    numeric_columns=["age", "annual_income", "browsing_time", "num_purchases", "avg_order_value",
                     "purchases_electronics", "purchases_fashion", "purchases_beauty", "purchases_groceries",
                     "purchases_baby", "purchases_home_garden", "purchases_sports_outdoor", "purchases_books",
                     "purchases_health", "purchases_toys_games"],
    label_columns=["true_segment"],
    pii_columns=["name", "email", "phone"],
    name_columns=["name"],
)


@pytest.fixture(scope="session")
def synthetic_customers() -> pd.DataFrame:
    """Snapshot 0 of a 400-customer synthetic set (all six personas)."""
    customers = make_synthetic(n_customers=400, seed=3).customers
    return customers[customers.snapshot == 0].reset_index(drop=True)


@pytest.fixture(scope="session")
def make_schema():
    """Builds a fresh SchemaConfig of the synthetic columns (a new object per call: tests may change it)."""
    return lambda: SchemaConfig(**SYNTHETIC_SCHEMA)


@pytest.fixture(scope="session")
def make_data_config():
    """Builds a DataConfig over a path (or the synthetic generator when None) with the synthetic schema."""

    def build(path: Path | None, cache_dir: Path, **overrides) -> DataConfig:
        fields = dict(name="test", path=None if path is None else str(path), schema=SchemaConfig(**SYNTHETIC_SCHEMA),
                      synthetic=SyntheticConfig(n_customers=200, seed=5) if path is None else None,
                      cache_dir=str(cache_dir))
        fields.update(overrides)
        return DataConfig(**fields)

    return build


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, synthetic_customers) -> Path:
    """A two-layer BERT (hidden size 32) with a WordPiece vocabulary trained on the synthetic texts."""
    import torch
    from transformers import BertConfig, BertModel

    from electra.tokenizer import train_wordpiece

    texts = [t for column in ("review", "support_message", "search_queries") for t in synthetic_customers[column]]
    tokenizer = train_wordpiece(texts, vocab_size=400, model_max_length=64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertModel(config).eval()
    target = tmp_path_factory.mktemp("tiny-encoder")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
