"""Validation before any work: clear messages, rejects with reasons, and exact row accounting."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from segmentation.io import SchemaError, customer_ids, load_customers
from segmentation.schema import DataConfig, SchemaConfig

SCHEMA = SchemaConfig(id_column="customer_id", text_columns=["review"], categorical_columns=["channel"],
                      numeric_columns=["age", "spend"], pii_columns=["name"], name_columns=["name"])
HEADER = b"customer_id,age,spend,channel,name,review\n"
ROWS = [
    b'c1,34,10.5,web,Ann Lee,great shoes\n',
    b'c2,abc,20,app,Bob Ray,fine\n',
    b'c1,40,30,web,Cy Dee,dup\n',
    b'c4,,40,store,Di Fox,ok\n',
    b'c5,50,50,,Ed Gray,""\n',
    b'c6,60,60,app,Fay Hu,caf\xff au lait\n',
    b'c7,70,inf,web,Gus Ive,' + b"x" * 60 + b"\n",
    b'c8,80,80,,Hal Jay,nice\n',
    b',90,90,web,Ivy Kay,no id\n',
    b'c10,1e2,1,app,Jo Lin,scientific notation is a number\n',
]


def config(path, **overrides) -> DataConfig:
    return DataConfig(name="hand", path=str(path), synthetic=None, schema=SCHEMA, max_text_chars=50, **overrides)


@pytest.fixture
def dirty_csv(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(HEADER + b"".join(ROWS))
    return path


def test_rejects_name_row_column_and_reason(dirty_csv):
    result = load_customers(config(dirty_csv))
    rejects = result.rejects
    got = sorted(zip(rejects.row_number, rejects.column, rejects.check))
    assert got == [
        (2, "age", "unparsable_number"),
        (3, "customer_id", "duplicate_id"),
        (4, "age", "missing_value"),
        (5, "review", "empty_text"),
        (6, "review", "bad_encoding"),
        (7, "review", "text_too_long"),
        (7, "spend", "unparsable_number"),
        (9, "customer_id", "missing_id"),
    ]
    reasons = dict(zip(zip(rejects.row_number, rejects.check), rejects.reason))
    assert reasons[(2, "unparsable_number")] == "not a number: 'abc'"
    assert reasons[(3, "duplicate_id")] == "duplicate id (first seen at row 1)"
    assert reasons[(6, "bad_encoding")] == "column 'review' holds bytes that are not valid UTF-8"
    assert reasons[(7, "text_too_long")] == "text of 60 characters, over data.max_text_chars=50"
    assert reasons[(7, "unparsable_number")] == "not a finite number: 'inf'"
    # Ids in rejects are masked, never shown whole.
    assert dict(zip(rejects.row_number, rejects.id))[3] == "**"  # "c1": too short to show any of it
    assert dict(zip(rejects.row_number, rejects.id))[7] == "**"
    assert set(rejects.file) == {str(dirty_csv)}


def test_row_accounting_and_typed_frame(dirty_csv):
    result = load_customers(config(dirty_csv))
    summary = result.summary
    assert (summary["rows_read"], summary["rows_used"], summary["rows_rejected"]) == (10, 3, 7)
    assert summary["rows_read"] == summary["rows_used"] + summary["rows_rejected"]
    assert summary["rejects_by_check"] == {"unparsable_number": 2, "duplicate_id": 1, "missing_value": 1,
                                           "empty_text": 1, "bad_encoding": 1, "text_too_long": 1, "missing_id": 1}
    frame = result.frame
    assert frame.customer_id.tolist() == ["c1", "c8", "c10"]
    assert frame.age.tolist() == [34.0, 80.0, 100.0]
    assert frame.channel.tolist() == ["web", "(missing)", "app"]
    assert summary["filled"] == {"categorical_missing": {"channel": 1}}  # row 5 was rejected, so not counted
    assert frame["__row__"].tolist() == [1, 8, 10]
    json.dumps(summary)  # the summary is written to JSON as it is


def test_median_imputation_is_counted(dirty_csv):
    result = load_customers(config(dirty_csv, missing_numeric="median"))
    assert result.summary["filled"]["numeric_median"] == {"age": 1}
    row4 = result.frame.set_index("customer_id").loc["c4"]
    assert row4.age == 65.0  # median of the file's parsable ages 34, 40, 50, 60, 70, 80, 90, 100


def test_missing_column_names_column_and_config_key(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,age,channel,name,review\nc1,3,web,A B,hi\n")
    with pytest.raises(SchemaError, match=r"data.schema.numeric_columns: \['spend'\]") as err:
        load_customers(config(path))
    assert str(path) in str(err.value)


def test_wrongly_typed_numeric_column_is_a_schema_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,age,spend,channel,name,review\n" + "".join(
        f"c{i},{i},{'web' if i > 1 else 5},web,A B,hi\n" for i in range(1, 6)))
    with pytest.raises(SchemaError, match=r"column 'spend' is configured as numeric .* 4 of 5 values are not "
                                          r"numbers \(first at row 2: 'web'\)"):
        load_customers(config(path))


def test_jsonl_broken_line_is_rejected_with_its_line_number(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"customer_id": "a", "age": 1, "spend": 2, "channel": "web", "name": "X Y", "review": "ok"}),
             "{not json",
             json.dumps({"customer_id": "b", "age": "7", "spend": 3.5, "channel": "app", "name": "Z W", "review": "fine"})]
    path.write_text("\n".join(lines) + "\n")
    result = load_customers(config(path))
    assert result.frame.customer_id.tolist() == ["a", "b"]
    assert result.frame.age.tolist() == [1.0, 7.0]
    assert result.rejects[["row_number", "check"]].values.tolist() == [[2, "bad_json"]]
    assert (result.summary["rows_read"], result.summary["rows_used"], result.summary["rows_rejected"]) == (3, 2, 1)


def test_parquet_directory_of_splits_and_filters(tmp_path):
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "age": [1, 2, 3], "spend": [1.0, 2.0, 3.0],
                          "channel": ["web", "app", "web"], "name": ["A A", "B B", "C C"], "review": ["x", "y", "z"]})
    frame.iloc[:2].to_parquet(tmp_path / "train.parquet")
    frame.iloc[2:].to_parquet(tmp_path / "test.parquet")
    both = load_customers(config(tmp_path))
    assert both.frame.customer_id.tolist() == ["a", "b", "c"]
    assert [s["file"].rsplit("/", 1)[-1] for s in both.summary["sources"]] == ["train.parquet", "test.parquet"]
    only_test = load_customers(config(tmp_path), split="test")
    assert only_test.frame.customer_id.tolist() == ["c"]
    web = load_customers(config(tmp_path, filters={"channel": "web"}))
    assert web.frame.customer_id.tolist() == ["a", "c"]
    assert (web.summary["rows_in_files"], web.summary["rows_excluded_by_selection"], web.summary["rows_read"]) == (3, 1, 2)


def test_duplicate_ids_across_split_files_name_the_first_file(tmp_path):
    (tmp_path / "train.csv").write_text("customer_id,age,spend,channel,name,review\na,1,1,web,A A,x\n")
    (tmp_path / "test.csv").write_text("customer_id,age,spend,channel,name,review\na,2,2,web,A A,y\n")
    result = load_customers(config(tmp_path))
    assert result.rejects.reason.tolist() == ["duplicate id (first seen at row 1 of train.csv)"]
    assert result.rejects.file.tolist() == [str(tmp_path / "test.csv")]


def test_synthetic_split_column_and_snapshot_filter(tmp_path, make_data_config):
    cfg = make_data_config(None, tmp_path, split_column="split", filters={"snapshot": 0})
    everything = load_customers(cfg)
    assert everything.summary["rows_in_files"] == 400 and everything.summary["rows_read"] == 200
    assert set(everything.frame.split) == {"train", "test"}
    train = load_customers(cfg, split="train")
    assert set(train.frame.split) == {"train"}
    assert len(train.frame) == (everything.frame.split == "train").sum()


def test_customer_ids_without_an_id_column(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("review\nhello\n\nworld\n")
    cfg = DataConfig(name="notes", path=str(path), synthetic=None, schema=SchemaConfig(text_columns=["review"]))
    result = load_customers(cfg)
    assert customer_ids(result.frame, None).tolist() == ["notes-1", "notes-3"]
    assert result.rejects.check.tolist() == ["empty_text"]
