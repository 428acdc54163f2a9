"""How far predicted probabilities can be taken at their word: reliability curve, Brier score, ECE.

Definitions (``n`` customers, equal-width bins on [0, 1], a probability on an inner edge going to the bin
above it, as in ``sklearn.calibration.calibration_curve``):

- reliability curve: per non-empty bin, the mean predicted probability (confidence), the observed
  frequency of the event and the number of predictions in the bin;
- expected calibration error: ECE = sum over bins of (n_b / n) * |frequency_b - confidence_b|;
- Brier score: binary, mean (p - y)^2 with p the probability of the positive class; multi-class, the
  original definition mean over customers of sum_k (p_k - 1[y = k])^2 (so 0 is perfect and 2 the worst).

The event depends on the kind of target: binary, "the row is positive" at the positive-class probability;
multi-class, "the most probable class is right" at its probability (top-label calibration); multi-label,
each label as a binary target, the curves pooled and the ECE and Brier score averaged over labels.
"""

from __future__ import annotations

import numpy as np


def bin_index(probabilities: np.ndarray, n_bins: int = 10) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], probabilities, side="right")


def reliability_curve(events: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    """Confidence, observed frequency and count of each non-empty bin, lowest bin first."""
    events = np.asarray(events, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if events.shape != probabilities.shape or events.ndim != 1:
        raise ValueError(f"events and probabilities must be 1-d of one length, got {events.shape} and "
                         f"{probabilities.shape}")
    if len(probabilities) and (probabilities.min() < 0 or probabilities.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    bins = bin_index(probabilities, n_bins)
    counts = np.bincount(bins, minlength=n_bins)
    confidence = np.bincount(bins, weights=probabilities, minlength=n_bins)
    frequency = np.bincount(bins, weights=events, minlength=n_bins)
    filled = counts > 0
    return {"confidence": (confidence[filled] / counts[filled]).tolist(),
            "frequency": (frequency[filled] / counts[filled]).tolist(),
            "count": counts[filled].astype(int).tolist()}


def expected_calibration_error(events: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> float:
    curve = reliability_curve(events, probabilities, n_bins)
    total = sum(curve["count"])
    if not total:
        return float("nan")
    return float(sum(n / total * abs(f - c) for n, f, c in zip(curve["count"], curve["frequency"], curve["confidence"])))


def brier_score(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary: ``y_true`` 0/1 and ``proba`` the positive-class probabilities (1-d) or both columns (n, 2).
    Multi-class: ``y_true`` class indices and ``proba`` (n, k)."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true)
    if proba.ndim == 1:
        return float(np.mean((proba - y_true) ** 2))
    if proba.shape[1] == 2:  # binary given as two columns: the positive column carries all of it
        return float(np.mean((proba[:, 1] - y_true) ** 2))
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(y_true)), y_true.astype(np.int64)] = 1.0
    return float(np.mean(((proba - onehot) ** 2).sum(axis=1)))


def calibration_summary(kind: str, y_true, proba: np.ndarray, n_bins: int = 10) -> dict:
    """Brier score, ECE and reliability curve of one target's predictions.

    ``y_true``: binary 0/1; multi-class class indices into ``proba``'s columns; multi-label an indicator
    matrix of ``proba``'s shape.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true)
    if kind == "binary":
        positive = proba[:, 1] if proba.ndim == 2 else proba
        return {"brier": brier_score(y_true, positive), "ece": expected_calibration_error(y_true, positive, n_bins),
                "reliability": reliability_curve(y_true, positive, n_bins), "event": "positive class"}
    if kind == "multiclass":
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), top]
        correct = (top == y_true).astype(np.float64)
        return {"brier": brier_score(y_true, proba), "ece": expected_calibration_error(correct, confidence, n_bins),
                "reliability": reliability_curve(correct, confidence, n_bins), "event": "top class is right"}
    if kind == "multilabel":
        labels = range(proba.shape[1])
        pooled = reliability_curve(y_true.ravel(), proba.ravel(), n_bins)
        return {"brier": float(np.mean([brier_score(y_true[:, j], proba[:, j]) for j in labels])),
                "ece": float(np.mean([expected_calibration_error(y_true[:, j], proba[:, j], n_bins) for j in labels])),
                "reliability": pooled, "event": "label present (all labels pooled)"}
    raise ValueError(f"unknown target kind {kind!r}")
