"""Segment descriptions on a hand-made table: lifts, category lifts, c-TF-IDF, examples and names by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from segmentation.config import DescribeConfig
from segmentation.describe import (CategorySignal, NumericSignal, SegmentDescription, category_signals, class_tfidf,
                                   describe_segments, name_segments, nearest_examples, numeric_signals, segment_name)

FRAME = pd.DataFrame({"spend": [10.0, 20.0, 40.0, 40.0, 40.0], "channel": ["web", "web", "app", "app", "web"]})
LABELS = np.array([0, 0, 1, 1, 1])
TEXTS = ["coupon coupon deal", "coupon family [EMAIL]", "laptop gpu", "laptop specs", "coupon"]


def test_numeric_lift_and_standardised_difference():
    signals = numeric_signals(FRAME, LABELS, ["spend"])
    std = math.sqrt(800 / 5)  # deviations -20, -10, 10, 10, 10 from the mean 30
    assert signals[0] == [NumericSignal("spend", 15.0, 30.0, 0.5, pytest.approx(-15 / std))]
    assert signals[1] == [NumericSignal("spend", 40.0, 30.0, pytest.approx(4 / 3), pytest.approx(10 / std))]


def test_category_lift_with_counts():
    signals = category_signals(FRAME, LABELS, ["channel"], min_lift=1.2, min_count=1)
    assert signals[0] == [CategorySignal("channel", "web", 2, 1.0, 0.6, pytest.approx(1 / 0.6))]
    assert signals[1] == [CategorySignal("channel", "app", 2, pytest.approx(2 / 3), 0.4, pytest.approx((2 / 3) / 0.4))]
    assert category_signals(FRAME, LABELS, ["channel"], min_lift=1.2, min_count=3) == {0: [], 1: []}


def test_class_tfidf_by_hand():
    terms = class_tfidf(TEXTS, LABELS, top_n=4, ngram_max=1, min_df=1)
    # Segment term counts: 0 -> coupon 3, deal 1, family 1; 1 -> laptop 2, gpu 1, specs 1, coupon 1.
    # A = 10 / 2 = 5 words per segment; idf = log(1 + A / f).
    idf = {"coupon": math.log(1 + 5 / 4), "laptop": math.log(1 + 5 / 2), "rare": math.log(1 + 5 / 1)}
    assert terms[0] == [("coupon", pytest.approx(0.6 * idf["coupon"])), ("deal", pytest.approx(0.2 * idf["rare"])),
                        ("family", pytest.approx(0.2 * idf["rare"]))]
    assert terms[1] == [("laptop", pytest.approx(0.4 * idf["laptop"])), ("gpu", pytest.approx(0.2 * idf["rare"])),
                        ("specs", pytest.approx(0.2 * idf["rare"])), ("coupon", pytest.approx(0.2 * idf["coupon"]))]
    assert all(t != "email" for t, _ in terms[0])  # scrubbing placeholders are not the customer's words


def test_nearest_examples_are_masked_and_cut():
    ids = ["C0001", "C0002", "C0003", "C0004", "C0005"]
    examples = nearest_examples(ids, TEXTS, LABELS, np.array([0.5, 0.1, 0.3, 0.2, 0.9]), n_examples=2, max_chars=10)
    assert [(e.id, e.distance) for e in examples[0]] == [("***02", 0.1), ("***01", 0.5)]
    assert [e.text for e in examples[0]] == ["coupon fa…", "coupon co…"]
    assert [e.id for e in examples[1]] == ["***04", "***03"]


def test_describe_and_name_segments():
    cfg = DescribeConfig(top_terms=3, ngram_max=1, min_term_df=1, min_category_count=1, n_examples=1)
    descriptions = describe_segments(FRAME, LABELS, np.array([0.5, 0.1, 0.3, 0.2, 0.9]), ["a1", "b2", "c3", "d4", "e5"],
                                     TEXTS, ["spend"], ["channel"], cfg, {"spend": "spend"})
    assert [(d.segment, d.size, d.share) for d in descriptions] == [(0, 2, 0.4), (1, 3, 0.6)]
    assert [d.name for d in descriptions] == ["low spend · web · coupon", "high spend · app · laptop"]
    restored = SegmentDescription.from_dict(descriptions[0].as_dict())
    assert restored == descriptions[0]


def test_names_skip_repeated_features_and_stay_distinct():
    def description(segment, size):
        return SegmentDescription(segment, "", size, 0.5,
                                  numeric=[NumericSignal("age", 70, 40, 1.75, 2.0), NumericSignal("spend", 5, 10, 0.5, -0.9)],
                                  categories=[CategorySignal("age_group", "65+", 50, 0.8, 0.1, 8.0),
                                              CategorySignal("channel", "phone", 40, 0.6, 0.2, 3.0)],
                                  terms=[("crossword", 0.3), ("large print", 0.2)])
    labels = {"age_group": "age"}
    # "age 65+" repeats the feature of "high age", so the next category is used.
    assert segment_name(description(0, 10), labels) == "high age · phone · crossword"
    twins = [description(0, 10), description(1, 5)]
    name_segments(twins, labels)
    assert twins[0].name == "high age · phone · crossword"
    assert twins[1].name == "low spend · phone · large print"  # the second-strongest signals of each kind
    assert twins[0].name != twins[1].name
