"""Read and validate a customer table before any work: every row is either used or rejected with a reason.

    result = load_customers(data_cfg)            # all rows that pass data.filters
    result.frame, result.rejects, result.summary

Problems with the file as a whole (a configured column is missing, a numeric column holds text) raise
``SchemaError`` naming the file and the column. Problems with single rows (duplicate or missing id,
unparsable or missing number, empty or over-long text, bytes that are not UTF-8, a broken JSON line)
send the row to ``rejects`` with the file, its row number, the masked id, the column and the reason; a
row with several problems appears once per problem. ``summary`` always satisfies
``rows_read == rows_used + rows_rejected``, where ``rows_read`` counts the rows selected by the split and
``data.filters`` (rows outside the selection are counted separately, as ``rows_excluded_by_selection``).

Row numbers count data rows from 1 in their file, the header not included (spreadsheet line = row + 1).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.privacy import mask_id
from segmentation.schema import DataConfig

log = logging.getLogger(__name__)

READERS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".json": "jsonl", ".txt": "text"}
REJECT_COLUMNS = ["file", "row_number", "id", "column", "check", "reason"]
MISSING_CATEGORY = "(missing)"
# Above this share of bad values a numeric column is wrongly typed in the config, not dirty in a few rows.
WRONG_TYPE_SHARE = 0.5


class SchemaError(ValueError):
    """The table does not match its schema as a whole; nothing was processed."""


@dataclass
class LoadResult:
    frame: pd.DataFrame
    rejects: pd.DataFrame
    summary: dict = field(default_factory=dict)


def split_file(directory: Path, split: str) -> Path:
    """The file holding ``split`` in a directory of ``train.csv`` / ``test.jsonl`` / ... files (also used by
    ``electra.data`` for pretraining corpora)."""
    matches = sorted(p for p in directory.glob(f"{split}.*") if p.suffix.lower() in READERS)
    if not matches:
        raise FileNotFoundError(f"no file for split {split!r} in {directory} (expected e.g. {split}.csv)")
    return matches[0]


def resolve_sources(data: DataConfig, split: str | None) -> list[Path]:
    """The files that hold ``split`` (all splits when None) of a data set."""
    if data.format == "hub":
        raise SchemaError("segmentation reads tables from files; data.format=hub is for pretraining corpora. "
                          "Export the dataset to CSV/Parquet/JSONL and set data.path")
    if data.path is None:
        if data.synthetic is None:
            raise SchemaError(f"data set {data.name!r} has neither data.path nor data.synthetic")
        from segmentation.synthetic import materialize_synthetic

        return [materialize_synthetic(data.synthetic, data.cache_dir)["customers"]]
    path = Path(data.path).expanduser()
    if path.is_dir():
        if split is not None:
            return [split_file(path, split)]
        splits = [s for s in (data.train_split, data.test_split) if s]
        files = [split_file(path, s) for s in splits
                 if any(p.suffix.lower() in READERS for p in path.glob(f"{s}.*"))]
        if not files:
            raise FileNotFoundError(f"no split files ({', '.join(f'{s}.*' for s in splits)}) in {path}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist (data.path={data.path!r})")
    return [path]


def _reader_for(path: Path, fmt: str) -> str:
    if fmt in ("csv", "parquet", "jsonl", "text"):
        return fmt
    if fmt == "json":
        return "jsonl"
    if fmt != "auto":
        raise SchemaError(f"unknown data.format {fmt!r}; use auto, csv, parquet, jsonl or text")
    try:
        return READERS[path.suffix.lower()]
    except KeyError:
        raise SchemaError(f"cannot tell the format of {path} from its extension; set data.format") from None


def read_table(path: Path, fmt: str = "auto") -> tuple[pd.DataFrame, list[dict]]:
    """A file as a data frame of raw values, plus reject records for rows that could not even be parsed.

    Text is decoded as UTF-8 with invalid bytes replaced by U+FFFD, so that validation can name the rows
    that hold them instead of failing on the whole file.
    """
    reader = _reader_for(path, fmt)
    rejects: list[dict] = []
    if reader == "csv":
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            # Blank lines are rows too (rejected as empty), so that nothing is dropped and row numbers match lines.
            # utf-8-sig: a byte-order mark (spreadsheet exports) would otherwise become part of the first name.
            # Only an empty field is missing: "NA" (a region code) or "None" (a review) are data.
            frame = pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8-sig", encoding_errors="replace",
                                skip_blank_lines=False, keep_default_na=False, na_values=[""])
        except pd.errors.ParserError as err:
            raise SchemaError(f"{path} is not a well-formed CSV file: {err}") from err
        except pd.errors.EmptyDataError as err:
            raise SchemaError(f"{path} is empty (no header row)") from err
    elif reader == "parquet":
        frame = pd.read_parquet(path)
    elif reader == "text":
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
        frame = pd.DataFrame({"text": lines})
    else:
        frame, bad_lines = _parse_lines(list(enumerate(path.read_bytes().splitlines(), start=1)), path, reader)
        return frame, rejects + bad_lines
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame, rejects


def _as_text(values: pd.Series) -> pd.Series:
    """Strings with missing values as ""; numbers that pandas parsed are turned back into text."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _select(frame: pd.DataFrame, path: Path, data: DataConfig, split: str | None, several_files: bool) -> pd.Series:
    keep = pd.Series(True, index=frame.index)
    if split is not None and data.split_column and not several_files:
        if data.split_column not in frame.columns:
            raise SchemaError(f"split column {data.split_column!r} is not in {path} (columns: {list(frame.columns)})")
        keep &= _as_text(frame[data.split_column]) == str(split)
    for column, value in data.filters.items():
        if column not in frame.columns:
            raise SchemaError(f"filter column {column!r} (data.filters) is not in {path} (columns: {list(frame.columns)})")
        keep &= _as_text(frame[column]) == str(value)
    return keep


def _check_columns(frame: pd.DataFrame, path: Path, data: DataConfig, optional_text: bool = False) -> list[str]:
    schema = data.schema
    required = {"data.schema.text_columns": [] if optional_text else list(schema.text_columns),
                "data.schema.categorical_columns": list(schema.categorical_columns),
                "data.schema.numeric_columns": list(schema.numeric_columns)}
    if schema.id_column:
        required["data.schema.id_column"] = [schema.id_column]
    problems = [f"{key}: {missing}" for key, columns in required.items()
                if (missing := [c for c in columns if c not in frame.columns])]
    if problems:
        hint = ""
        if len(frame.columns) == 1 and any(d in str(frame.columns[0]) for d in (";", "\t", "|")):
            hint = (f"; its header {str(frame.columns[0])[:60]!r} looks like another delimiter: "
                    "CSV files must be comma-separated (tab-separated files need the .tsv extension)")
        raise SchemaError(f"{path} lacks configured columns ({'; '.join(problems)}); "
                          f"its columns are {list(frame.columns)}{hint}")
    warnings = []
    for key, columns in (("label_columns", schema.label_columns), ("name_columns", schema.name_columns)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            warnings.append(f"{path.name}: data.schema.{key} {missing} not in the table; ignored")
    return warnings


class _Problems:
    """Reject records of one file, collected column by column with vectorised checks."""

    def __init__(self, path: Path, ids: pd.Series):
        self.path, self.ids, self.records = str(path), ids, []

    def add(self, mask: pd.Series, column: str, check: str, reason) -> None:
        for row in mask.index[mask.to_numpy()]:
            text = reason(row) if callable(reason) else reason
            self.records.append({"file": self.path, "row_number": int(row),
                                 "id": mask_id(self.ids[row]) if self.ids[row] else "",
                                 "column": column, "check": check, "reason": text})

    def rows(self) -> set[int]:
        return {r["row_number"] for r in self.records}


def _snippet(value: object, limit: int = 30) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _validate(frame: pd.DataFrame, path: Path, data: DataConfig, seen_ids: dict,
              filled: dict, allow_empty_text: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    schema = data.schema
    if allow_empty_text:  # a customer described by fields only: absent text columns are empty text
        frame = frame.assign(**{c: "" for c in schema.text_columns if c not in frame.columns})
    if schema.id_column:
        ids = _as_text(frame[schema.id_column]).str.strip()
    else:
        ids = pd.Series([f"{path.stem}-{i}" for i in frame.index], index=frame.index, dtype=object)
    problems = _Problems(path, ids)
    out = pd.DataFrame(index=frame.index)
    fills: list[tuple[str, str, pd.Series]] = []

    text_like = [c for c in [schema.id_column, *schema.text_columns, *schema.categorical_columns] if c]
    for column in dict.fromkeys(text_like):
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            bad = _as_text(values).str.contains("\ufffd", regex=False)
            problems.add(bad, column, "bad_encoding", f"column {column!r} holds bytes that are not valid UTF-8")

    if schema.id_column:
        problems.add(ids == "", schema.id_column, "missing_id", "missing id")
        first_row: dict[str, int] = {}
        duplicate = pd.Series(False, index=frame.index)
        where: dict[int, str] = {}
        for row, value in zip(frame.index, ids):
            if not value:
                continue
            if value in seen_ids or value in first_row:
                duplicate[row] = True
                where[row] = seen_ids.get(value) or f"row {first_row[value]}"
            else:
                first_row[value] = row
        problems.add(duplicate, schema.id_column, "duplicate_id", lambda r: f"duplicate id (first seen at {where[r]})")
        for value, row in first_row.items():
            seen_ids[value] = f"row {row} of {path.name}"
        out[schema.id_column] = ids

    for column in schema.numeric_columns:
        raw = frame[column]
        missing = raw.isna() | (_as_text(raw).str.strip() == "")
        parsed = pd.to_numeric(raw.where(~missing), errors="coerce") if not pd.api.types.is_bool_dtype(raw) \
            else pd.Series(np.nan, index=raw.index)
        unparsable = ~missing & parsed.isna()
        nonfinite = ~missing & ~unparsable & ~np.isfinite(parsed.astype(float))
        present = int((~missing).sum())
        bad = int((unparsable | nonfinite).sum())
        if present and bad / present > WRONG_TYPE_SHARE:
            first = unparsable.idxmax() if unparsable.any() else nonfinite.idxmax()
            raise SchemaError(f"{path}: column {column!r} is configured as numeric (data.schema.numeric_columns) but "
                              f"{bad} of {present} values are not numbers (first at row {first}: {_snippet(raw[first])}); "
                              "move it to categorical_columns or fix the data")
        problems.add(unparsable, column, "unparsable_number",
                     lambda r, c=column: f"not a number: {_snippet(frame.at[r, c])}")
        problems.add(nonfinite, column, "unparsable_number",
                     lambda r, c=column: f"not a finite number: {_snippet(frame.at[r, c])}")
        if column in data.valid_ranges:
            low, high = (list(data.valid_ranges[column]) + [None, None])[:2]
            valid = ~missing & ~unparsable & ~nonfinite
            outside = valid & (((parsed < low) if low is not None else False) | ((parsed > high) if high is not None else False))
            problems.add(outside, column, "out_of_range",
                         lambda r, c=column, lo=low, hi=high: f"{_snippet(frame.at[r, c])} outside the valid range "
                                                              f"[{lo}, {hi}] (data.valid_ranges)")
        if data.missing_numeric == "median":
            median = float(parsed[~unparsable & ~nonfinite & ~missing].median()) if present > bad else 0.0
            parsed = parsed.where(~missing, median)
            fills.append(("numeric_median", column, missing))
        elif data.missing_numeric == "reject":
            problems.add(missing, column, "missing_value", "missing numeric value")
        else:
            raise SchemaError(f"data.missing_numeric must be reject or median, got {data.missing_numeric!r}")
        out[column] = parsed.astype(float)

    for column in schema.categorical_columns:
        values = _as_text(frame[column]).str.strip()
        empty = values == ""
        fills.append(("categorical_missing", column, empty))
        out[column] = values.where(~empty, MISSING_CATEGORY)

    if schema.text_columns:
        texts = {c: _as_text(frame[c]).str.strip() for c in schema.text_columns}
        all_empty = pd.concat([t == "" for t in texts.values()], axis=1).all(axis=1)
        if not allow_empty_text:
            problems.add(all_empty, ",".join(schema.text_columns), "empty_text",
                         f"no text: {', '.join(schema.text_columns)} all empty")
        for column, values in texts.items():
            too_long = values.str.len() > data.max_text_chars
            problems.add(too_long, column, "text_too_long",
                         lambda r, v=values: f"text of {len(v[r])} characters, over data.max_text_chars={data.max_text_chars}")
            out[column] = values

    used_columns = set(out.columns)
    for column in frame.columns:  # labels, names, everything else: carried as they are
        if column not in used_columns:
            out[column] = frame[column]
    keep = ~out.index.isin(sorted(problems.rows()))
    for kind, column, mask in fills:  # counted on the rows used: a rejected row was not filled in for use
        count = int((mask.to_numpy() & keep).sum())
        if count:
            filled.setdefault(kind, {})[column] = filled.get(kind, {}).get(column, 0) + count
    return out[keep], problems.records


def load_customers(data: DataConfig, split: str | None = None, allow_empty_text: bool = False) -> LoadResult:
    """Read, select (``split``, ``data.filters``) and validate the customer table described by ``data``.

    ``allow_empty_text``: rows without free text are valid (their profile is written from their fields).
    """
    sources = resolve_sources(data, split)
    frames, records, warnings, source_info = [], [], [], []
    seen_ids: dict[str, str] = {}
    filled: dict = {}
    rows_in_files = rows_excluded = 0
    for path in sources:
        frame, read_rejects = read_table(path, data.format)
        if frame.empty and not read_rejects:
            raise SchemaError(f"{path} holds no rows")
        keep = _select(frame, path, data, split, len(sources) > 1) if len(frame) else pd.Series(dtype=bool)
        rows_in_files += len(frame) + len(read_rejects)
        rows_excluded += int((~keep).sum()) if len(frame) else 0
        frame = frame[keep] if len(frame) else frame
        if len(frame):
            warnings += _check_columns(frame, path, data, optional_text=allow_empty_text)
            valid, problems = _validate(frame, path, data, seen_ids, filled, allow_empty_text)
        else:
            valid, problems = frame, []
        # Lines that were not even parsable cannot be matched against filters; they count as read.
        records += read_rejects + problems
        frames.append(valid.assign(__source__=path.name, __row__=valid.index.to_numpy()))
        source_info.append({"file": str(path), "rows": len(keep) + len(read_rejects),
                            "selected": int(keep.sum()) + len(read_rejects)})

    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rejects = pd.DataFrame.from_records(records, columns=REJECT_COLUMNS)
    if len(rejects):  # in file order, then row order, as a person reads the file
        file_order = {str(p): i for i, p in enumerate(sources)}
        rejects = rejects.sort_values(["file", "row_number"], key=lambda c: c.map(file_order) if c.name == "file" else c,
                                      kind="stable").reset_index(drop=True)
    rows_rejected = int(rejects[["file", "row_number"]].drop_duplicates().shape[0]) if len(rejects) else 0
    rows_read = rows_in_files - rows_excluded
    summary = {
        "data": data.name,
        "sources": source_info,
        "split": split,
        "filters": dict(data.filters),
        "rows_in_files": rows_in_files,
        "rows_excluded_by_selection": rows_excluded,
        "rows_read": rows_read,
        "rows_used": len(frame),
        "rows_rejected": rows_rejected,
        "rejects_by_check": rejects.drop_duplicates(["file", "row_number", "check"])["check"].value_counts().to_dict()
        if len(rejects) else {},
        "filled": filled,
        "warnings": warnings,
    }
    if rows_read != summary["rows_used"] + rows_rejected:  # an accounting bug, never a data problem
        raise AssertionError(f"row accounting broken: read {rows_read} != used {len(frame)} + rejected {rows_rejected}")
    if rows_rejected:
        log.warning("%d of %d rows rejected: %s", rows_rejected, rows_read, summary["rejects_by_check"])
    for warning in warnings:
        log.warning(warning)
    if frame.empty:
        raise SchemaError(f"no usable rows in {[str(p) for p in sources]}: {rows_read} read, {rows_rejected} rejected "
                          f"({summary['rejects_by_check']}); first problems: {records[:3]}")
    return LoadResult(frame=frame, rejects=rejects, summary=summary)


def iter_table_chunks(path: Path, fmt: str = "auto", chunk_size: int = 4096) -> Iterator[tuple[pd.DataFrame, list[dict]]]:
    """A file read ``chunk_size`` rows at a time: (raw frame indexed by row number, reject records of unparsable rows).

    The streaming counterpart of ``read_table`` (same row numbers, same decoding), so that scoring a table
    of any size holds one chunk in memory.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    reader = _reader_for(path, fmt)
    if reader == "csv":
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        try:
            chunks = pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8", encoding_errors="replace",
                                 skip_blank_lines=False, chunksize=chunk_size)
            start = 1
            for chunk in chunks:
                chunk.index = pd.RangeIndex(start, start + len(chunk))
                start += len(chunk)
                yield chunk, []
        except pd.errors.ParserError as err:
            raise SchemaError(f"{path} is not a well-formed CSV file: {err}") from err
        except pd.errors.EmptyDataError as err:
            raise SchemaError(f"{path} is empty (no header row)") from err
    elif reader == "parquet":
        import pyarrow.parquet as pq

        start = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            chunk = batch.to_pandas()
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk, []
    else:
        with path.open("rb") as handle:
            lines: list[tuple[int, bytes]] = []
            for number, raw in enumerate(handle, start=1):
                lines.append((number, raw))
                if len(lines) == chunk_size:
                    yield _parse_lines(lines, path, reader)
                    lines = []
            if lines:
                yield _parse_lines(lines, path, reader)


def _parse_lines(lines: list[tuple[int, bytes]], path: Path, reader: str) -> tuple[pd.DataFrame, list[dict]]:
    if reader == "text":
        frame = pd.DataFrame({"text": [raw.decode("utf-8", errors="replace").rstrip("\r\n") for _, raw in lines]})
        frame.index = pd.Index([n for n, _ in lines])
        return frame, []
    records, rows, rejects = [], [], []
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8", errors="replace"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            rejects.append({"file": str(path), "row_number": number, "id": "", "column": "",
                            "check": "bad_json", "reason": f"line is not a JSON object ({err})"})
            continue
        records.append(record)
        rows.append(number)
    frame = pd.DataFrame.from_records(records)
    frame.index = pd.Index(rows)
    return frame, rejects


def selection_mask(frame: pd.DataFrame, path: Path, data: DataConfig, split: str | None = None) -> pd.Series:
    """Rows of one file (or chunk) that ``split`` and ``data.filters`` select."""
    return _select(frame, path, data, split, several_files=False)


def validate_chunk(frame: pd.DataFrame, path: Path, data: DataConfig, seen_ids: dict, filled: dict,
                   allow_empty_text: bool = False) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Validate one chunk of raw rows exactly as ``load_customers`` validates a file.

    ``seen_ids`` and ``filled`` carry state across the chunks of a file (duplicate ids, fill counts).
    ``allow_empty_text``: customers without free text (columns empty or absent) are valid; scoring uses
    it, because the profile builder writes a customer's text from their fields.
    Returns the valid rows (indexed by row number), the reject records and whole-file warnings.
    """
    if not len(frame):
        return frame, [], []
    warnings = _check_columns(frame, path, data, optional_text=allow_empty_text)
    valid, problems = _validate(frame, path, data, seen_ids, filled, allow_empty_text)
    return valid, problems, warnings


def customer_ids(frame: pd.DataFrame, id_column: str | None) -> pd.Series:
    """Customer ids as strings: the id column, or ``<file stem>-<row>`` for tables without one."""
    if id_column and id_column in frame.columns:
        return _as_text(frame[id_column])
    if {"__source__", "__row__"} <= set(frame.columns):
        stems = frame["__source__"].astype(str).str.rsplit(".", n=1).str[0]
        return stems + "-" + frame["__row__"].astype(str)
    return pd.Series([f"row-{i + 1}" for i in range(len(frame))], index=frame.index)
