"""One text per customer for the encoder: chosen fields plus scrubbed free text, through a template.

Personal-data columns never reach a profile: a template or field list that names one is refused. Free
text is scrubbed (``segmentation.privacy``) before it is used anywhere, with each customer's own name
columns as extra patterns, when ``data.scrub_pii`` is on.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import pandas as pd

from segmentation.privacy import PiiScrubber, ScrubReport

FIELDS, TEXT = "fields", "text"


def humanize(name: object) -> str:
    """``payment_method`` -> ``payment method``: column names and values as words."""
    return str(name).replace("_", " ").strip()


def text_values(values: pd.Series) -> list[str]:
    """A column as a list of strings, missing values as empty strings (not "nan")."""
    return values.astype(object).where(values.notna(), "").astype(str).tolist()


def scrub_text_columns(frame: pd.DataFrame, text_columns: Sequence[str], name_columns: Sequence[str],
                       enabled: bool = True) -> tuple[pd.DataFrame, ScrubReport | None]:
    """A copy of ``frame`` whose free-text columns are scrubbed, and what the scrubber replaced."""
    if not enabled:
        return frame, None
    scrubber = PiiScrubber()
    out = frame.copy()
    names = [c for c in name_columns if c in frame.columns]
    name_rows = list(zip(*(text_values(frame[c]) for c in names))) if names else None
    for column in text_columns:
        if column in frame.columns:
            out[column] = scrubber.scrub_many(text_values(frame[column]), name_rows)
    return out, scrubber.report


def _text(value: object) -> str:
    return "" if not isinstance(value, str) and pd.isna(value) else str(value)


class FreeTexts(Sequence):
    """Each customer's free-text columns joined by ``separator``, scrubbed when first read.

    With precomputed embeddings nothing needs every text: descriptions read a sample (distinctive terms)
    and a few rows (examples). Scrubbing only what is read keeps a million-row fit from spending a minute
    on regular expressions, and nothing unscrubbed is ever returned.
    """

    def __init__(self, frame: pd.DataFrame, text_columns: Sequence[str], name_columns: Sequence[str],
                 scrubber: PiiScrubber | None, separator: str = " | "):
        # Columns are kept as they are and read row by row: converting a million texts up front would
        # cost what reading them lazily saves.
        self._columns = [frame[c] for c in text_columns if c in frame.columns]
        self._names = [frame[c] for c in name_columns if c in frame.columns]
        self._scrubber = scrubber
        self._separator = separator
        self._length = len(frame)
        self._cache: dict[int, str] = {}

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        index = int(index)
        if index < 0:
            index += self._length
        if index not in self._cache:
            parts = [_text(column.iat[index]) for column in self._columns]
            if self._scrubber is not None:
                names = [_text(column.iat[index]) for column in self._names]
                parts = [self._scrubber(part, names) for part in parts]
            self._cache[index] = self._separator.join(p for p in parts if p)
        return self._cache[index]


class ProfileBuilder:
    """Fill ``template`` for every row: ``{fields}``, ``{text}`` and any non-personal column by name."""

    def __init__(self, template: str, field_columns: Sequence[str], text_columns: Sequence[str],
                 text_separator: str = " | ", pii_columns: Sequence[str] = ()):
        self.template = template
        self.field_columns = list(field_columns)
        self.text_columns = list(text_columns)
        self.text_separator = text_separator
        self.pii_columns = list(pii_columns)
        self.placeholders = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        leaked = sorted({*self.placeholders, *self.field_columns} & set(self.pii_columns))
        if leaked:
            raise ValueError(f"profile template or field_columns use personal-data columns {leaked} "
                             f"(data.schema.pii_columns); they are never encoded")
        if not self.placeholders:
            raise ValueError(f"profile template {template!r} uses no field; use {{fields}}, {{text}} or column names")

    def build(self, frame: pd.DataFrame) -> list[str]:
        columns = [c for c in self.placeholders if c not in (FIELDS, TEXT)]
        missing = [c for c in [*columns, *self.field_columns, *self.text_columns] if c not in frame.columns]
        if missing:
            raise KeyError(f"profile uses columns {missing} that are not in the table (columns: {list(frame.columns)})")
        values: dict[str, list[str]] = {c: [_format(v) for v in frame[c]] for c in columns}
        if FIELDS in self.placeholders:
            parts = [[f"{humanize(c)}: {_format(v)}" for v in frame[c]] for c in self.field_columns]
            values[FIELDS] = ["; ".join(row) for row in zip(*parts)] if parts else [""] * len(frame)
        if TEXT in self.placeholders:
            texts = [text_values(frame[c]) for c in self.text_columns]
            values[TEXT] = [self.text_separator.join(t for t in row if t) for row in zip(*texts)] if texts \
                else [""] * len(frame)
        names = list(values)
        # An empty {fields} (a text-only data set) must not leave the template's separator at the front.
        return [self.template.format(**dict(zip(names, row))).strip().lstrip(".;:,| ").strip()
                for row in zip(*(values[n] for n in names))]

    def get_state(self) -> dict:
        return {"template": self.template, "field_columns": self.field_columns, "text_columns": self.text_columns,
                "text_separator": self.text_separator, "pii_columns": self.pii_columns}

    @classmethod
    def from_state(cls, state: dict) -> ProfileBuilder:
        return cls(**state)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:g}"
    return humanize(value) if isinstance(value, str) else str(value)
