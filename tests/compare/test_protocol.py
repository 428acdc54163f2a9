"""The evaluation protocol: scores equal hand-computed values on fixed assignments; seeds fix every draw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segmentation.compare.config import ClusteringProtocolConfig, ProbeConfig
from segmentation.compare.protocol import (clustering_protocol, few_shot_indices, l2_normalize, linear_probe,
                                           probe_scores)

# Six texts, two labels; the fixed assignment puts two "a" in one cluster and the rest in the other.
TRUTH = np.array(["a", "a", "a", "b", "b", "b"])
ASSIGNED = np.array([0, 0, 1, 1, 1, 1])


def hand_computed_scores() -> dict[str, float]:
    """NMI, ARI and Hungarian accuracy of ASSIGNED against TRUTH, from their definitions."""
    # Contingency (cluster x label): cluster 0 = {a: 2}, cluster 1 = {a: 1, b: 3}.
    h_labels = math.log(2)
    h_clusters = -(2 / 6 * math.log(2 / 6) + 4 / 6 * math.log(4 / 6))
    mutual = (2 / 6 * math.log((2 / 6) / (2 / 6 * 3 / 6)) + 1 / 6 * math.log((1 / 6) / (4 / 6 * 3 / 6))
              + 3 / 6 * math.log((3 / 6) / (4 / 6 * 3 / 6)))
    pairs = math.comb(2, 2) + math.comb(1, 2) + math.comb(3, 2)  # pairs together in both
    rows, cols, total = math.comb(2, 2) + math.comb(4, 2), 2 * math.comb(3, 2), math.comb(6, 2)
    expected = rows * cols / total
    return {"nmi": mutual / ((h_labels + h_clusters) / 2),
            "ari": (pairs - expected) / ((rows + cols) / 2 - expected),
            "accuracy": 5 / 6,  # cluster 0 -> a (2 right), cluster 1 -> b (3 right)
            "v_measure": mutual / ((h_labels + h_clusters) / 2)}  # V-measure = NMI with the arithmetic mean


def test_clustering_protocol_scores_a_fixed_assignment_exactly():
    # Rows 0-1 on one axis, rows 2-5 on another (different lengths: L2 normalisation makes them coincide),
    # so any K-Means with k=2 returns the fixed assignment.
    embeddings = np.array([[1, 0], [3, 0], [0, 1], [0, 2], [0, 5], [0, 0.5]], dtype=np.float32)
    scores = clustering_protocol(embeddings, TRUTH, ClusteringProtocolConfig(), seed=0)
    assert set(scores) == {"kmeans", "minibatch_kmeans"}
    expected = hand_computed_scores()
    assert expected["nmi"] == pytest.approx(0.478704, abs=1e-6) and expected["ari"] == pytest.approx(12 / 37)
    for algorithm in ("kmeans", "minibatch_kmeans"):
        for name, value in expected.items():
            assert scores[algorithm][name] == pytest.approx(value, abs=1e-12), (algorithm, name)
        assert scores[algorithm]["k"] == 2 and scores[algorithm]["n"] == 6


def test_clustering_k_defaults_to_the_number_of_test_labels_and_can_be_set():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 4))
    labels = np.repeat(["x", "y", "z"], 10)
    assert clustering_protocol(embeddings, labels, ClusteringProtocolConfig(algorithms=["kmeans"]), 0)["kmeans"]["k"] == 3
    fixed = clustering_protocol(embeddings, labels, ClusteringProtocolConfig(algorithms=["kmeans"], k=5), 0)["kmeans"]
    assert fixed["k"] == 5 and fixed["n_segments"] == 5
    with pytest.raises(ValueError, match="unknown 'dbscan'"):
        clustering_protocol(embeddings, labels, ClusteringProtocolConfig(algorithms=["dbscan"]), 0)


def test_clustering_seed_is_the_only_source_of_randomness():
    rng = np.random.default_rng(1)
    embeddings, labels = rng.normal(size=(60, 8)), np.repeat(list("abcdef"), 10)
    cfg = ClusteringProtocolConfig(algorithms=["kmeans"])
    assert clustering_protocol(embeddings, labels, cfg, 3) == clustering_protocol(embeddings, labels, cfg, 3)


def test_probe_scores_equal_hand_computed_accuracy_and_macro_f1():
    scores = probe_scores(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"])
    # a: precision 1/2, recall 1/2 -> F1 1/2; b: 2/3, 1 -> 4/5; c: never predicted -> 0.
    assert scores == {"accuracy": pytest.approx(3 / 5), "macro_f1": pytest.approx((0.5 + 0.8 + 0) / 3)}


def test_few_shot_draws_take_shots_per_label_within_the_label_and_depend_only_on_the_seed():
    labels = np.array(["a"] * 20 + ["b"] * 15 + ["rare"] * 3)
    index = few_shot_indices(labels, 8, seed=7)
    assert len(index) == 8 + 8 + 3 and len(set(index)) == len(index)
    assert (labels[index] == "a").sum() == 8 and (labels[index] == "rare").sum() == 3
    assert np.array_equal(index, few_shot_indices(labels, 8, seed=7))
    assert not np.array_equal(index, few_shot_indices(labels, 8, seed=8))


def test_linear_probe_full_and_few_shot():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    train_y, test_y = np.repeat(["p", "q", "r"], 12), np.repeat(["p", "q", "r"], 4)
    train_x = centres[np.repeat(np.arange(3), 12)] + rng.normal(scale=0.3, size=(36, 3))
    test_x = centres[np.repeat(np.arange(3), 4)] + rng.normal(scale=0.3, size=(12, 3))
    full = linear_probe(train_x, train_y, test_x, test_y, ProbeConfig(C=10.0, max_iter=1000))
    assert full == {"accuracy": 1.0, "macro_f1": 1.0, "n_train": 36}
    few_cfg = ProbeConfig(C=1.0, max_iter=100, l2_normalize=True, shots=2, draws=4)
    few = linear_probe(train_x, train_y, test_x, test_y, few_cfg, seed=0)
    assert few["accuracy"] == 1.0 and few["accuracy_std"] == 0.0
    assert (few["shots"], few["draws"], few["n_train"]) == (2, 4, 6)
    assert few == linear_probe(train_x, train_y, test_x, test_y, few_cfg, seed=0)


def test_l2_normalize_keeps_directions_and_zero_rows():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
