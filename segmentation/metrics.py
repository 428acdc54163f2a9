"""Agreement between segments and ground-truth labels: NMI, ARI, Hungarian accuracy, V-measure.

``clustering_scores`` is the single entry point (the comparison harness reuses it). Hungarian accuracy
matches segments to labels one-to-one so as to maximise the customers on the diagonal; with more
segments than labels the unmatched segments count as errors, so it penalises over-segmentation that NMI
forgives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn import metrics


def contingency(labels_true: Sequence, labels_pred: Sequence) -> pd.DataFrame:
    """Counts of customers per (segment, label): rows are segments, columns labels."""
    return pd.crosstab(pd.Series(np.asarray(labels_pred), name="segment"), pd.Series(np.asarray(labels_true), name="label"))


def hungarian_accuracy(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Share of customers whose segment maps to their label under the best one-to-one matching."""
    table = contingency(labels_true, labels_pred).to_numpy()
    if table.size == 0:
        return 0.0
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def clustering_scores(labels_true: Sequence, labels_pred: Sequence) -> dict[str, float]:
    """NMI (arithmetic normalisation), ARI, Hungarian accuracy, V-measure, homogeneity and completeness."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(f"labels must be two 1-d sequences of one length, got {labels_true.shape} and {labels_pred.shape}")
    homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(labels_true, labels_pred)
    return {
        "nmi": float(metrics.normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(metrics.adjusted_rand_score(labels_true, labels_pred)),
        "accuracy": hungarian_accuracy(labels_true, labels_pred),
        "v_measure": float(v_measure),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "n_segments": int(len(np.unique(labels_pred))),
        "n_labels": int(len(np.unique(labels_true))),
        "n": int(len(labels_true)),
    }
