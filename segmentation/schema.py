"""Typed description of a customer data set: where it lives, which columns mean what, how it splits.

One ``DataConfig`` (Hydra group ``data/``) serves every entry point: pretraining reads the free-text
columns of the training split, segmentation and prediction read the whole schema, the comparison harness
reads the label column and both splits. A new data set needs a config file, not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyntheticConfig:
    """Arguments of ``segmentation.synthetic.make_synthetic`` for the built-in data set."""

    n_customers: int = 5000
    seed: int = 0
    n_segments: int = 6
    migration_rate: float = 0.15
    text_noise: float = 0.6
    pii_rate: float = 0.2


@dataclass
class SchemaConfig:
    id_column: str | None = None
    text_columns: list[str] = field(default_factory=lambda: ["text"])
    categorical_columns: list[str] = field(default_factory=list)
    numeric_columns: list[str] = field(default_factory=list)
    # Targets for evaluation and need prediction; the first one is the default.
    label_columns: list[str] = field(default_factory=list)
    # Columns holding personal data: never encoded, masked in reports.
    pii_columns: list[str] = field(default_factory=list)
    # Columns whose values (a customer's own name) are scrubbed from that customer's free text.
    name_columns: list[str] = field(default_factory=list)
    # Display names for columns in segment names, reports and strategies (default: the name, spaced).
    feature_labels: dict[str, str] = field(default_factory=dict)


@dataclass
class DataConfig:
    """A customer data set.

    ``path`` is a file (CSV, Parquet, JSONL or plain text, one document per line), a directory holding
    ``train.*`` / ``test.*`` files, or a Hugging Face dataset name (``format: hub``). ``path: null`` with
    ``synthetic`` set generates the built-in synthetic set into the cache.
    """

    name: str = "synthetic"
    path: str | None = None
    format: str = "auto"  # auto | csv | parquet | jsonl | text | hub
    synthetic: SyntheticConfig | None = field(default_factory=SyntheticConfig)
    schema: SchemaConfig = field(default_factory=SchemaConfig)
    split_column: str | None = None
    train_split: str = "train"
    test_split: str | None = "test"
    # Keep only rows where column == value (e.g. {snapshot: 0}).
    filters: dict[str, Any] = field(default_factory=dict)
    scrub_pii: bool = True
    # Row validation (segmentation): a free-text value longer than this is rejected, not silently cut.
    max_text_chars: int = 20000
    # A missing numeric value: "reject" the row, or fill with the column "median" (counted in the summary).
    missing_numeric: str = "reject"
    # Plausible ranges of numeric columns, {column: [low, high]} (null = unbounded); rows outside are rejected.
    valid_ranges: dict[str, list[Any]] = field(default_factory=dict)
    # Where generated data and caches go; relative paths are taken from the directory the command runs in.
    cache_dir: str = ".cache"
