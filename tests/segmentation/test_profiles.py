"""Profile texts: template filling, personal data never included, free text scrubbed."""

from __future__ import annotations

import pandas as pd
import pytest

from segmentation.profiles import ProfileBuilder, scrub_text_columns

FRAME = pd.DataFrame({
    "name": ["Emma Smith", "Raj Patel"],
    "email": ["emma@example.com", "raj@example.com"],
    "channel": ["mobile_app", "store"],
    "age": [34.0, 1234.5],
    "review": ["love it, regards Emma", "mail me at raj@example.com"],
    "notes": ["", "call +44 7700 900123"],
})


def test_template_fills_fields_text_and_columns():
    builder = ProfileBuilder("{fields}. {text} (age {age})", ["channel"], ["review", "notes"], " | ", ["name", "email"])
    assert builder.build(FRAME) == [
        "channel: mobile app. love it, regards Emma (age 34)",
        "channel: store. mail me at raj@example.com | call +44 7700 900123 (age 1234)",
    ]


@pytest.mark.parametrize("template,fields", [("{text} {email}", []), ("{fields}", ["name"])])
def test_personal_data_columns_are_refused(template, fields):
    with pytest.raises(ValueError, match="personal-data columns"):
        ProfileBuilder(template, fields, ["review"], " | ", ["name", "email"])


def test_scrubbing_replaces_personal_data_and_records_rules():
    scrubbed, report = scrub_text_columns(FRAME, ["review", "notes"], ["name"], enabled=True)
    assert scrubbed.review.tolist() == ["love it, regards [NAME]", "mail me at [EMAIL]"]
    assert scrubbed.notes.tolist() == ["", "call [PHONE]"]
    assert report.as_dict()["replaced"] == {"name": 1, "email": 1, "phone": 1}
    assert report.as_dict()["rules"] == ["email", "iban", "card", "phone", "name"]
    assert FRAME.review[0] == "love it, regards Emma"  # the input frame is left alone
    unscrubbed, none = scrub_text_columns(FRAME, ["review"], ["name"], enabled=False)
    assert none is None and unscrubbed.review.tolist() == FRAME.review.tolist()


def test_text_only_profile_has_no_leading_separator():
    builder = ProfileBuilder("{fields}. {text}", [], ["review"], " | ", [])
    assert builder.build(FRAME[["review"]]) == ["love it, regards Emma", "mail me at raj@example.com"]
