"""Calibration metrics equal hand-computed values and scikit-learn's where it has them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from segmentation.calibration import (brier_score, calibration_summary, expected_calibration_error,
                                      reliability_curve)

# Four bins (edges 0.25, 0.5, 0.75): {0.1, 0.2} -> bin 0, {0.3} -> 1, {0.6} -> 2, {0.9, 0.95} -> 3.
EVENTS = np.array([0, 1, 0, 1, 1, 1])
PROBABILITIES = np.array([0.1, 0.2, 0.3, 0.6, 0.9, 0.95])


def test_reliability_curve_by_hand_and_as_sklearn():
    curve = reliability_curve(EVENTS, PROBABILITIES, n_bins=4)
    np.testing.assert_allclose(curve["confidence"], [0.15, 0.3, 0.6, 0.925])
    np.testing.assert_allclose(curve["frequency"], [0.5, 0.0, 1.0, 1.0])
    assert curve["count"] == [2, 1, 1, 2]
    frequency, confidence = calibration_curve(EVENTS, PROBABILITIES, n_bins=4)
    np.testing.assert_allclose(curve["frequency"], frequency)
    np.testing.assert_allclose(curve["confidence"], confidence)


def test_ece_and_brier_by_hand():
    # ECE = 2/6 |0.5 - 0.15| + 1/6 |0 - 0.3| + 1/6 |1 - 0.6| + 2/6 |1 - 0.925|
    expected_ece = (2 * 0.35 + 0.3 + 0.4 + 2 * 0.075) / 6
    assert expected_calibration_error(EVENTS, PROBABILITIES, n_bins=4) == pytest.approx(expected_ece, abs=1e-12)
    # Brier = mean of (0.1, 0.8, 0.3, 0.4, 0.1, 0.05)^2
    expected_brier = (0.01 + 0.64 + 0.09 + 0.16 + 0.01 + 0.0025) / 6
    assert brier_score(EVENTS, PROBABILITIES) == pytest.approx(expected_brier, abs=1e-12)
    assert brier_score(EVENTS, PROBABILITIES) == pytest.approx(brier_score_loss(EVENTS, PROBABILITIES), abs=1e-12)


def test_multiclass_brier_and_top_label_ece_by_hand():
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([0, 2])
    # Row 1: 0.3^2 + 0.2^2 + 0.1^2 = 0.14; row 2: 0.2^2 + 0.5^2 + 0.7^2 = 0.78.
    assert brier_score(y, proba) == pytest.approx(0.46, abs=1e-12)
    assert brier_score(y, proba) == pytest.approx(brier_score_loss(y, proba, labels=[0, 1, 2], scale_by_half=False))
    summary = calibration_summary("multiclass", y, proba, n_bins=10)
    # Top labels: 0.7 (right) and 0.5 (wrong), each alone in its bin: 1/2 * 0.3 + 1/2 * 0.5.
    assert summary["ece"] == pytest.approx(0.4, abs=1e-12)
    assert summary["reliability"]["count"] == [1, 1] and summary["reliability"]["frequency"] == [0.0, 1.0]


def test_binary_summary_uses_the_positive_column_and_multilabel_averages_labels():
    two_columns = np.column_stack([1 - PROBABILITIES, PROBABILITIES])
    summary = calibration_summary("binary", EVENTS, two_columns, n_bins=4)
    assert summary["brier"] == pytest.approx(brier_score(EVENTS, PROBABILITIES))
    assert summary["ece"] == pytest.approx(expected_calibration_error(EVENTS, PROBABILITIES, 4))
    truth = np.column_stack([EVENTS, 1 - EVENTS])
    proba = np.column_stack([PROBABILITIES, PROBABILITIES[::-1]])
    multilabel = calibration_summary("multilabel", truth, proba, n_bins=4)
    assert multilabel["ece"] == pytest.approx(np.mean([expected_calibration_error(truth[:, j], proba[:, j], 4)
                                                       for j in (0, 1)]))
    assert multilabel["brier"] == pytest.approx(np.mean([brier_score(truth[:, j], proba[:, j]) for j in (0, 1)]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="lie in"):
        reliability_curve(np.array([1]), np.array([1.2]))
    with pytest.raises(ValueError, match="one length"):
        reliability_curve(np.array([1, 0]), np.array([0.5]))
    with pytest.raises(ValueError, match="unknown target kind"):
        calibration_summary("ranking", EVENTS, PROBABILITIES)
