"""Fixtures of the comparison-harness tests: a tiny labelled data set in train/test files, built here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

# Three intents whose words the session tokenizer (tests/conftest.py) knows.
TOPICS = {
    "refund": ["refund", "parcel", "damaged", "arrived"],
    "card": ["card", "charged", "twice", "same"],
    "garden": ["garden", "seeds", "patio", "tools"],
}


def labelled_rows(per_label: int, offset: int = 0) -> pd.DataFrame:
    rows = []
    for label, words in TOPICS.items():
        for i in range(offset, offset + per_label):
            a, b, c = words[i % 4], words[(i + 1) % 4], words[(i + 2) % 4]
            rows.append({"text": f"the {a} {b} and {c} for my order {i}", "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def labelled_dir(tmp_path_factory) -> Path:
    """train.csv (12 texts per label) and test.csv (6 per label) with columns text, label."""
    path = tmp_path_factory.mktemp("labelled")
    labelled_rows(12).to_csv(path / "train.csv", index=False)
    labelled_rows(6, offset=12).to_csv(path / "test.csv", index=False)
    return path


@pytest.fixture
def labelled_data(labelled_dir, tmp_path):
    """A DataConfig over ``labelled_dir`` with its own cache directory."""
    from segmentation.schema import DataConfig, SchemaConfig

    return DataConfig(name="tiny", path=str(labelled_dir), synthetic=None, cache_dir=str(tmp_path / "cache"),
                      schema=SchemaConfig(text_columns=["text"], label_columns=["label"]))
