"""Recommendations: propensities and rankings by hand, hit rates by hand, and better than popularity on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segmentation.recommend import SegmentRecommender, find_need_target, ranking_scores

PURCHASES = pd.DataFrame({"purchases_books": [3, 1, 0, 0], "purchases_toys": [0, 1, 4, 2], "other": [9, 9, 9, 9]})
SEGMENTS = np.array([0, 0, 1, 1])


def test_propensity_and_popularity_by_hand():
    recommender = SegmentRecommender(smoothing=1.0).fit(PURCHASES, SEGMENTS, n_segments=2)
    assert recommender.categories_ == ["books", "toys"]
    # Segment 0: books 4 + 1, toys 1 + 1 -> 5/7, 2/7; segment 1: books 0 + 1, toys 6 + 1 -> 1/8, 7/8.
    np.testing.assert_allclose(recommender.propensity_, [[5 / 7, 2 / 7], [1 / 8, 7 / 8]])
    np.testing.assert_allclose(recommender.popularity_, [5 / 13, 8 / 13])  # (4 + 1, 7 + 1) / 13
    assert recommender.recommend(np.array([0, 1]), top_k=1) == [["books"], ["toys"]]


def test_needs_reorder_the_segment_ranking():
    recommender = SegmentRecommender(need_weight=0.5).fit(PURCHASES, SEGMENTS, n_segments=2)
    # A head whose classes are in another order and include a class with no purchase column.
    needs = recommender.align(["toys", "garden", "books"], np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]))
    np.testing.assert_allclose(needs, [[0.05, 0.9], [0.8, 0.1]])
    scores = recommender.scores(np.array([0, 0]), needs)
    expected = 0.5 * np.log(needs) + 0.5 * np.log([[5 / 7, 2 / 7]] * 2)
    np.testing.assert_allclose(scores, expected)
    # Customer 0: sqrt(0.05 * 5/7) < sqrt(0.9 * 2/7) -> toys first; customer 1 keeps books.
    assert recommender.recommend(np.array([0, 0]), needs, top_k=2) == [["toys", "books"], ["books", "toys"]]
    assert recommender.rank(np.array([0]), needs[:1], need_weight=0.0).tolist() == [[0, 1]]
    restored = SegmentRecommender.from_state(json.loads(json.dumps(recommender.get_state())))
    np.testing.assert_array_equal(restored.scores(np.array([0, 0]), needs), scores)


def test_hit_rate_and_recall_by_hand():
    ranking = np.array([[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1]])
    held_out = [{"a"}, {"a", "b"}, {"c"}, set()]  # the last customer has no held-out purchase: left out
    scores = ranking_scores(ranking, ["a", "b", "c"], held_out, ks=[1, 2])
    assert scores["n"] == 3
    assert scores["hit_rate@1"] == pytest.approx(1 / 3)  # only customer 0
    assert scores["hit_rate@2"] == pytest.approx(2 / 3)  # customers 0 and 1 (b at rank 2)
    assert scores["recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_missing_purchase_columns_fail_clearly():
    with pytest.raises(ValueError, match="no purchase columns purchases_<category>"):
        SegmentRecommender().fit(pd.DataFrame({"spend": [1.0]}), np.array([0]), 1)


def test_recommendations_beat_the_popularity_baseline_on_synthetic_data(fitted_run):
    summary = json.loads((fitted_run.out / "needs.json").read_text())
    recommendations = summary["recommendations"]
    assert recommendations["need_target"] == "next_category"
    assert recommendations["rows"] == summary["targets"]["next_category"]["n_evaluated"]  # the test split
    scores = recommendations["scores"]
    for k in (1, 3):
        popular = max(scores["popular_purchases"][f"hit_rate@{k}"], scores["popular_heldout"][f"hit_rate@{k}"])
        assert scores["segment+needs"][f"hit_rate@{k}"] > popular + 0.15, (k, scores)
    with pytest.raises(ValueError, match="'next_purchase' is not a fitted need head"):
        find_need_target(SegmentRecommender().fit(PURCHASES, SEGMENTS, 2), {}, "next_purchase")
