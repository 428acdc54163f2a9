"""Prediction targets from the schema's label columns: binary, multi-class and multi-label.

A target is written as a short spec (the same in configs, on the command line and in saved models):

    next_category                  multi-class: the column's value (next category, intent, ...)
    multilabel:next_categories     multi-label: the column's values joined by a separator ("fashion;beauty")
    will_buy:electronics           binary: "electronics" is among the values of the basket column
    binary:churned=yes             binary: the column equals the value

Rows whose target value is missing are left out of fitting and evaluation for that target only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

KINDS = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class Target:
    spec: str
    kind: str  # binary | multiclass | multilabel
    column: str
    positive: str | None = None  # binary: the value that makes a row positive
    separator: str = ";"
    # binary: True when ``positive`` is one of the column's separated values (will_buy), False when it
    # must equal the whole value.
    member: bool = False

    @property
    def slug(self) -> str:
        """A file-name-safe form of the spec."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.spec).strip("_") or "target"

    def values(self, frame: pd.DataFrame) -> pd.Series:
        if self.column not in frame.columns:
            raise KeyError(f"target {self.spec!r} reads column {self.column!r}, which is not in the table "
                           f"(columns: {list(frame.columns)})")
        raw = frame[self.column]
        return raw.astype(object).where(raw.notna(), "").astype(str).str.strip()

    def known(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows with a target value."""
        return (self.values(frame) != "").to_numpy()

    def labels(self, frame: pd.DataFrame) -> np.ndarray | list[list[str]]:
        """The target of every row (use ``known`` to drop missing ones first).

        binary: 0/1 integers; multi-class: strings; multi-label: a list of value lists.
        """
        values = self.values(frame)
        if self.kind == "multiclass":
            return values.to_numpy(dtype=object)
        if self.kind == "multilabel":
            return [split_values(v, self.separator) for v in values]
        if self.member:
            return np.array([self.positive in split_values(v, self.separator) for v in values], dtype=np.int64)
        return (values == self.positive).to_numpy().astype(np.int64)

    def as_dict(self) -> dict:
        return asdict(self)


def split_values(value: str, separator: str = ";") -> list[str]:
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def parse_target(spec: str, basket_column: str = "next_categories", separator: str = ";") -> Target:
    """A ``Target`` from its spec (see the module docstring)."""
    spec = str(spec).strip()
    prefix, colon, rest = spec.partition(":")
    if not colon:
        if not spec:
            raise ValueError("empty target spec")
        return Target(spec, "multiclass", spec, separator=separator)
    if not rest:
        raise ValueError(f"target {spec!r}: nothing after {prefix + ':'!r}")
    if prefix == "multilabel":
        return Target(spec, "multilabel", rest, separator=separator)
    if prefix == "will_buy":
        return Target(spec, "binary", basket_column, positive=rest, separator=separator, member=True)
    if prefix == "binary":
        column, equals, value = rest.partition("=")
        if not equals or not column or not value:
            raise ValueError(f"target {spec!r}: write binary:COLUMN=VALUE")
        return Target(spec, "binary", column, positive=value, separator=separator)
    raise ValueError(f"target {spec!r}: unknown kind {prefix!r}; write COLUMN (multi-class), multilabel:COLUMN, "
                     "will_buy:VALUE or binary:COLUMN=VALUE")


def resolve_targets(specs: list[str] | None, label_columns: list[str], columns, basket_column: str = "next_categories",
                    separator: str = ";") -> list[Target]:
    """The configured targets, or (``specs`` None) one multi-class target per label column present."""
    if specs is None:
        return [Target(c, "multiclass", c, separator=separator) for c in label_columns if c in columns]
    targets = [parse_target(s, basket_column, separator) for s in specs]
    missing = sorted({t.column for t in targets if t.column not in columns})
    if missing:
        raise ValueError(f"need targets {[t.spec for t in targets if t.column in missing]} read columns {missing} "
                         f"that are not in the data (columns: {list(columns)})")
    duplicates = sorted({t.spec for t in targets if [u.spec for u in targets].count(t.spec) > 1})
    if duplicates:
        raise ValueError(f"need targets {duplicates} are listed twice")
    return targets
