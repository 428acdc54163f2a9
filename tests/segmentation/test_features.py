"""Analyst features, standardised tabular features and block fusion, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.features import AnalystFeatures, BlockFusion, TabularFeatures


def test_age_groups_and_income_quartiles():
    frame = pd.DataFrame({"age": [17.0, 18.0, 24.0, 25.0, 64.0, 65.0, 90.0, 40.0],
                          "annual_income": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]})
    features = AnalystFeatures("age", [18, 25, 35, 45, 55, 65], "annual_income").fit(frame)
    out = features.transform(frame)
    assert out.age_group.tolist() == ["under 18", "18-24", "18-24", "25-34", "55-64", "65+", "65+", "35-44"]
    assert features.income_edges_ == [27.5, 45.0, 62.5]
    assert out.income_quartile.tolist() == ["Q1", "Q1", "Q2", "Q2", "Q3", "Q3", "Q4", "Q4"]
    again = AnalystFeatures.from_state(features.get_state()).transform(frame)
    assert again.equals(out)


def test_derived_columns_skip_absent_columns():
    features = AnalystFeatures("age", None, "annual_income").fit(pd.DataFrame({"age": [30.0]}))
    assert features.derived_columns_ == ["age_group"]
    assert "income_quartile" not in features.transform(pd.DataFrame({"age": [30.0]})).columns


def test_tabular_standardises_logs_skewed_columns_and_pools_rare_categories():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "spend": [0.0, 0.0, 0.0, 1000.0],
                          "channel": ["web", "web", "app", "fax"]})
    tab = TabularFeatures(["x", "spend"], ["channel"], "auto", min_category_share=0.3).fit(frame)
    assert tab.log_columns_ == ["spend"]  # skewness 2.0 > 1 and non-negative; x has skewness 0
    numeric = tab.transform_numeric(frame)
    assert numeric[:, 0] == pytest.approx((np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25), abs=1e-6)
    logged = np.log1p([0.0, 0.0, 0.0, 1000.0])
    assert numeric[:, 1] == pytest.approx((logged - logged.mean()) / logged.std(), abs=1e-5)
    assert tab.categories_ == {"channel": ["web", "other"]}  # app and fax are 25% each, under 30%
    assert tab.feature_names_ == ["x", "spend", "channel=web", "channel=other"]
    new = pd.DataFrame({"x": [2.5], "spend": [0.0], "channel": ["never seen"]})
    assert tab.transform_categorical(new).tolist() == [[0.0, 1.0]]
    assert tab.transform_categorical(frame).tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    restored = TabularFeatures.from_state(tab.get_state())
    assert np.array_equal(restored.transform_numeric(frame), numeric)


def test_fusion_weight_is_the_blocks_share_of_variance():
    rng = np.random.default_rng(0)
    blocks = {"text": rng.normal(size=(500, 64)) * 0.1, "numeric": rng.normal(size=(500, 15)) * 3,
              "categorical": np.eye(4)[rng.integers(0, 4, 500)]}
    fusion = BlockFusion({"text": 1.0, "numeric": 2.0, "categorical": 0.5}).fit(blocks)
    fused = fusion.transform(blocks)
    assert fused.shape == (500, 64 + 15 + 4)
    spans = {"text": slice(0, 64), "numeric": slice(64, 79), "categorical": slice(79, 83)}
    for name, weight in {"text": 1.0, "numeric": 2.0, "categorical": 0.5}.items():
        assert fused[:, spans[name]].astype(np.float64).var(axis=0).sum() == pytest.approx(weight, rel=1e-4)


def test_fusion_leaves_out_zero_weight_blocks():
    blocks = {"text": np.ones((3, 2)) * np.arange(3)[:, None], "numeric": np.arange(6.0).reshape(3, 2)}
    fusion = BlockFusion({"text": 1.0, "numeric": 0.0}).fit(blocks)
    assert list(fusion.scales_) == ["text"]
    assert fusion.transform(blocks).shape == (3, 2)


def test_dominant_direction_removal_only_removes_dominant_directions():
    from segmentation.features import DominantDirectionRemoval

    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(1000, 20))
    direction = np.ones(20) / np.sqrt(20)
    anisotropic = isotropic + 30 * rng.normal(size=(1000, 1)) * direction + 5.0  # one direction holds ~98%
    removal = DominantDirectionRemoval(max_share=0.25).fit(anisotropic)
    assert removal.components_.shape == (1, 20)
    assert abs(removal.components_[0] @ direction) == pytest.approx(1.0, abs=1e-3)
    assert removal.removed_share_ > 0.95
    cleaned = removal.transform(anisotropic)
    # What was along the planted direction (spread ~30) is gone up to the estimation error of the component.
    assert np.abs(cleaned @ direction).max() < 0.05 and np.abs(cleaned.mean(axis=0)).max() < 1e-4
    untouched = DominantDirectionRemoval(max_share=0.25).fit(isotropic)
    assert untouched.components_.shape == (0, 20)  # nothing dominant: only centred
    np.testing.assert_allclose(untouched.transform(isotropic), isotropic - isotropic.mean(axis=0), atol=1e-5)
    state, arrays = removal.get_state()
    np.testing.assert_allclose(DominantDirectionRemoval.from_state(state, arrays).transform(anisotropic), cleaned)
