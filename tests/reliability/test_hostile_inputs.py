"""Malformed customer tables: a clear error naming file and column, or the row rejected with its reason.

Every case checks the accounting: rows read = rows used + rows rejected. The outcomes are the table in
docs/RELIABILITY.md.
"""

from pathlib import Path

import pytest

from segmentation.io import SchemaError, load_customers
from segmentation.schema import DataConfig, SchemaConfig

BAD = Path(__file__).parent / "bad_inputs"


def _data(path: Path, **overrides) -> DataConfig:
    schema = SchemaConfig(id_column="customer_id", text_columns=["comment"], categorical_columns=["region"],
                          numeric_columns=["age", "income"])
    values = dict(name="hostile", path=str(path), synthetic=None, schema=schema,
                  valid_ranges={"age": [0, 120], "income": [0, None]})
    values.update(overrides)
    return DataConfig(**values)


def _accounted(result) -> None:
    s = result.summary
    assert s["rows_read"] == s["rows_used"] + s["rows_rejected"]


ERRORS = {
    "empty.csv": r"empty\.csv is empty \(no header row\)",
    "header_only.csv": r"header_only\.csv holds no rows",
    "wrong_delimiter.csv": r"wrong_delimiter\.csv lacks configured columns.*looks like another delimiter",
    "missing_column.csv": r"missing_column\.csv lacks configured columns \(data\.schema\.numeric_columns: \['income'\]\)",
}


@pytest.mark.parametrize("name,message", ERRORS.items())
def test_file_level_problems_stop_with_a_message_naming_file_and_column(name, message):
    with pytest.raises(SchemaError, match=message):
        load_customers(_data(BAD / name))


# file -> (rows used, {(row_number, column, check)} rejected)
REJECTS = {
    "non_utf8.csv": (2, {(2, "comment", "bad_encoding")}),
    "duplicate_ids.csv": (2, {(3, "customer_id", "duplicate_id")}),
    "numbers_as_text.csv": (1, {(2, "age", "unparsable_number"), (3, "income", "unparsable_number")}),
    "nan_inf.csv": (4, {(2, "income", "unparsable_number"), (3, "income", "unparsable_number"),
                        (4, "income", "unparsable_number")}),
    "negative_ages.csv": (1, {(2, "age", "out_of_range"), (3, "age", "out_of_range")}),
    "empty_text.csv": (1, {(2, "comment", "empty_text"), (3, "comment", "empty_text")}),
    "broken_line.jsonl": (2, {(2, "", "bad_json")}),
}


@pytest.mark.parametrize("name,expected", REJECTS.items())
def test_bad_rows_are_rejected_with_their_reason(name, expected):
    used, rejected = expected
    result = load_customers(_data(BAD / name))
    _accounted(result)
    assert len(result.frame) == used
    got = {(int(r.row_number), r.column, r.check) for r in result.rejects.itertuples()}
    assert got == rejected
    assert (result.rejects["file"] == str(BAD / name)).all()
    assert result.rejects["reason"].str.len().gt(5).all()


@pytest.mark.parametrize("name", ["bom.csv", "quoted_newlines.csv", "extra_columns.csv"])
def test_harmless_oddities_are_read_as_intended(name):
    result = load_customers(_data(BAD / name))
    _accounted(result)
    assert result.summary["rows_rejected"] == 0 and len(result.frame) == 2
    assert list(result.frame["customer_id"][:2]) == ["A1", "A2"]  # the BOM does not stick to the first column
    if name == "quoted_newlines.csv":
        assert result.frame["comment"].iloc[0] == "first line\nsecond line"
    if name == "extra_columns.csv":
        assert list(result.frame["loyalty_tier"]) == ["gold", "silver"]  # carried, never dropped silently


def test_rejected_ids_are_masked():
    result = load_customers(_data(BAD / "duplicate_ids.csv"))
    assert result.rejects["id"].tolist() == ["**"]  # ids this short are hidden entirely


def test_megabyte_text_is_rejected_not_truncated(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("customer_id,age,income,region,comment\nA1,34,52000,north,fine\n"
                    f"A2,41,61000,south,{'word ' * 200_000}\n")
    result = load_customers(_data(path))
    _accounted(result)
    assert [(r.row_number, r.check) for r in result.rejects.itertuples()] == [(2, "text_too_long")]
    assert "1000000 characters" in result.rejects["reason"].iloc[0] or "999999" in result.rejects["reason"].iloc[0]


def test_schema_naming_columns_that_do_not_exist():
    data = _data(BAD / "duplicate_ids.csv")
    data.schema.text_columns = ["comments"]
    with pytest.raises(SchemaError, match=r"data\.schema\.text_columns: \['comments'\]"):
        load_customers(data)


def test_a_column_of_words_configured_as_numeric_is_a_config_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("customer_id,age,income,region,comment\nA1,young,5,north,x\nA2,old,6,south,y\n")
    with pytest.raises(SchemaError, match=r"column 'age' is configured as numeric.*move it to categorical_columns"):
        load_customers(_data(path))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist"):
        load_customers(_data(tmp_path / "nope.csv"))


def test_na_and_none_are_data_not_missing():
    frame = load_customers(_data(BAD / "nan_inf.csv")).frame.set_index("customer_id")
    assert frame.at["A5", "region"] == "NA" and frame.at["A6", "comment"] == "None"
