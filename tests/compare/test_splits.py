"""Labelled train/test texts: the data set's own split, a seeded split rule, clear errors, scrubbed text."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segmentation.compare.splits import load_labelled_splits
from segmentation.schema import DataConfig, SchemaConfig, SyntheticConfig
from tests.compare.conftest import labelled_rows


def test_train_and_test_files_give_the_splits(labelled_data):
    splits = load_labelled_splits(labelled_data)
    assert splits.label_column == "label"
    assert len(splits.train_texts) == 36 and len(splits.test_texts) == 18
    assert splits.train_texts[0] == "the refund parcel and damaged for my order 0"
    assert list(np.unique(splits.test_labels)) == ["card", "garden", "refund"]
    assert splits.summary == {"split_rule": "splits 'train' / 'test' of the data set", "label_column": "label",
                              "n_train": 36, "n_test": 18, "n_labels_train": 3, "n_labels_test": 3,
                              "rows_rejected": 0, "test_texts_also_in_train": 0}


def test_one_file_without_a_split_needs_a_split_rule(tmp_path):
    table = labelled_rows(10)
    table.to_csv(tmp_path / "all.csv", index=False)
    data = DataConfig(name="one", path=str(tmp_path / "all.csv"), synthetic=None, cache_dir=str(tmp_path),
                      schema=SchemaConfig(text_columns=["text"], label_columns=["label"]))
    with pytest.raises(ValueError, match="would be the same rows.*test_fraction"):
        load_labelled_splits(data)
    splits = load_labelled_splits(data, test_fraction=0.2, split_seed=0)
    assert (len(splits.train_texts), len(splits.test_texts)) == (24, 6)
    assert sorted(splits.test_labels) == ["card"] * 2 + ["garden"] * 2 + ["refund"] * 2  # stratified
    assert not set(splits.test_texts) & set(splits.train_texts)
    again = load_labelled_splits(data, test_fraction=0.2, split_seed=0)
    assert again.test_texts == splits.test_texts
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        load_labelled_splits(data, test_fraction=1.5)


def test_missing_label_column_is_named(labelled_data):
    with pytest.raises(ValueError, match="label_column 'intent' is not in data set 'tiny'"):
        load_labelled_splits(labelled_data, label_column="intent")
    unlabelled = dataclasses.replace(labelled_data, schema=SchemaConfig(text_columns=["text"], label_columns=[]))
    with pytest.raises(ValueError, match="has no label column"):
        load_labelled_splits(unlabelled)


def test_synthetic_customers_free_text_only_scrubbed_with_their_split(tmp_path):
    data = DataConfig(name="synthetic", synthetic=SyntheticConfig(n_customers=200, seed=5), cache_dir=str(tmp_path),
                      split_column="split", filters={"snapshot": 0},
                      schema=SchemaConfig(id_column="customer_id", text_columns=["review", "support_message"],
                                          label_columns=["true_segment"], pii_columns=["name", "email", "phone"],
                                          name_columns=["name"]))
    splits = load_labelled_splits(data)
    assert splits.label_column == "true_segment"
    assert splits.summary["n_train"] + splits.summary["n_test"] == 200
    assert all(" | " in text for text in splits.train_texts)  # review | support message
    texts = splits.train_texts + splits.test_texts
    assert not any("@" in text for text in texts) and any("[EMAIL]" in text for text in texts)  # scrubbed
