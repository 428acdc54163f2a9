"""The labelled texts of a data set, split into train and test the same way for every encoder.

Texts are the free-text columns of each row, scrubbed of personal data and joined by " | " (no
behavioural columns: the comparison is about text encoders). The split comes from the data set (its
``train.*``/``test.*`` files or its split column); a table without one is split by a seeded, stratified
rule (``test_fraction``). Only the training texts are ever given to pretraining.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.io import load_customers
from segmentation.profiles import scrub_text_columns, text_values
from segmentation.schema import DataConfig

log = logging.getLogger(__name__)

TEXT_SEPARATOR = " | "


@dataclass
class LabelledSplits:
    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_column: str
    summary: dict = field(default_factory=dict)


def choose_label_column(label_column: str | None, data: DataConfig, columns) -> str:
    if label_column:
        if label_column not in columns:
            raise ValueError(f"label_column {label_column!r} is not in data set {data.name!r} (columns: {list(columns)})")
        return label_column
    present = [c for c in data.schema.label_columns if c in columns]
    if not present:
        raise ValueError(f"data set {data.name!r} has no label column: data.schema.label_columns="
                         f"{list(data.schema.label_columns)} are not among its columns {list(columns)}; "
                         "set label_column or data.schema.label_columns")
    return present[0]


def row_texts(frame: pd.DataFrame, data: DataConfig) -> list[str]:
    """The scrubbed free text of every row, text columns joined in schema order."""
    schema = data.schema
    frame, _ = scrub_text_columns(frame, schema.text_columns, schema.name_columns, data.scrub_pii)
    columns = [text_values(frame[c]) for c in schema.text_columns]
    return [TEXT_SEPARATOR.join(t for t in row if t) for row in zip(*columns)]


def _has_own_split(data: DataConfig) -> bool:
    if data.split_column:
        return True
    return data.path is not None and Path(data.path).expanduser().is_dir()


def _labelled(frame: pd.DataFrame, column: str, where: str) -> pd.DataFrame:
    missing = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
    if missing.any():
        log.warning("%s: %d rows without a %s label are left out", where, int(missing.sum()), column)
    return frame[~missing]


def load_labelled_splits(data: DataConfig, label_column: str | None = None, test_fraction: float | None = None,
                         split_seed: int = 0) -> LabelledSplits:
    """Train and test texts with their labels (as strings), validated by ``segmentation.io.load_customers``."""
    if test_fraction is None:
        if not data.test_split:
            raise ValueError(f"data set {data.name!r} has no test split (data.test_split is null); set "
                             "data.test_split or test_fraction")
        if not _has_own_split(data):
            raise ValueError(f"data set {data.name!r} is one file without a split column, so its train and test "
                             "splits would be the same rows; set data.split_column, point data.path at a directory "
                             "of train.*/test.* files, or set test_fraction")
        train = load_customers(data, data.train_split)
        test = load_customers(data, data.test_split)
        column = choose_label_column(label_column, data, train.frame.columns)
        choose_label_column(column, data, test.frame.columns)
        train_frame = _labelled(train.frame, column, f"{data.name} {data.train_split}")
        test_frame = _labelled(test.frame, column, f"{data.name} {data.test_split}")
        rejected = train.summary["rows_rejected"] + test.summary["rows_rejected"]
        rule = f"splits {data.train_split!r} / {data.test_split!r} of the data set"
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        from sklearn.model_selection import train_test_split

        loaded = load_customers(data, None)
        column = choose_label_column(label_column, data, loaded.frame.columns)
        frame = _labelled(loaded.frame, column, data.name)
        labels = frame[column].astype(str)
        train_frame, test_frame = train_test_split(frame, test_size=test_fraction, random_state=split_seed,
                                                   stratify=labels if labels.value_counts().min() >= 2 else None)
        rejected = loaded.summary["rows_rejected"]
        rule = f"stratified test_fraction={test_fraction}, split_seed={split_seed}"
    if len(train_frame) == 0 or len(test_frame) == 0:
        raise ValueError(f"data set {data.name!r}: {len(train_frame)} labelled training rows and {len(test_frame)} "
                         "test rows; both splits need rows")
    train_texts, test_texts = row_texts(train_frame, data), row_texts(test_frame, data)
    train_labels = train_frame[column].astype(str).to_numpy()
    test_labels = test_frame[column].astype(str).to_numpy()
    summary = {"split_rule": rule, "label_column": column, "n_train": len(train_texts), "n_test": len(test_texts),
               "n_labels_train": int(len(np.unique(train_labels))), "n_labels_test": int(len(np.unique(test_labels))),
               "rows_rejected": int(rejected),
               # Identical texts in both splits (e.g. a query asked twice): not leakage, but worth knowing.
               "test_texts_also_in_train": int(len(set(test_texts) & set(train_texts)))}
    return LabelledSplits(train_texts, train_labels, test_texts, test_labels, column, summary)
