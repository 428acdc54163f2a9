"""Clustering estimators, k selection on planted blobs, and metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from segmentation.clustering import (GaussianMixtureClusterer, HDBSCANClusterer, KMeansClusterer, Preprocessor,
                                     nearest_centers)
from segmentation.metrics import clustering_scores, hungarian_accuracy
from segmentation.selection import choose_k, kmeans_bic, select_k


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=600, centers=4, n_features=5, cluster_std=0.6, center_box=(-10, 10), random_state=7)
    return X.astype(np.float32), y


def test_select_k_finds_planted_k_with_kmeans(blobs):
    X, y = blobs
    selection = select_k(X, lambda k, seed: KMeansClusterer(k, n_init=2, random_state=seed), list(range(2, 8)),
                         stability_runs=4, stability_sample=300, progress=False)
    assert selection.chosen_k == 4
    assert selection.k_values == [2, 3, 4, 5, 6, 7]
    assert selection.stability[2] == pytest.approx(1.0)
    assert max(selection.silhouette) == selection.silhouette[2]
    assert all(b is not None for b in selection.bic)  # spherical-Gaussian BIC for K-Means
    assert min(selection.bic) == selection.bic[2]
    assert "k = 4" in selection.rule


def test_select_k_finds_planted_k_with_mixture_bic(blobs):
    X, _ = blobs
    selection = select_k(X, lambda k, seed: GaussianMixtureClusterer(k, random_state=seed), list(range(2, 8)),
                         method="gmm", stability_runs=4, stability_sample=300, progress=False)
    assert selection.chosen_k == 4
    assert "BIC" in selection.rule


def test_choose_k_rule_takes_the_finest_stable_k_of_the_shortlist():
    ks = [2, 3, 4, 5, 6]
    silhouette = [0.30, 0.45, 0.52, 0.51, 0.50]  # shortlist (within 5% of 0.52): 4, 5, 6
    k, shortlist, rule = choose_k("kmeans", ks, silhouette, [None] * 5, [1.0, 0.7, 1.0, 0.95, 0.6], 0.9, 0.05)
    assert (k, shortlist) == (5, [4, 5, 6])  # 6 does not reproduce; 5 is the finest stable one
    assert "warning" not in rule
    k, _, rule = choose_k("kmeans", ks, silhouette, [None] * 5, [1.0, 0.7, 0.8, 0.85, 0.6], 0.9, 0.05)
    assert k == 5 and "warning" in rule  # nothing stable enough: the most stable, flagged
    k, shortlist, rule = choose_k("gmm", ks, [0.0] * 5, [100.0, 10.0, 0.0, 4.0, 60.0], [0.9, 0.9, 0.95, 0.92, 1.0],
                                  0.9, 0.05, bic_tolerance=10.0)
    assert (k, shortlist) == (5, [3, 4, 5])  # BIC within 10 of the lowest


def test_kmeans_bic_by_hand():
    X = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels, centers = np.array([0, 0, 1, 1]), np.array([[1.0], [11.0]])
    variance = 4.0 / 4  # SSE 4 over n*d = 4
    log_likelihood = 4 * np.log(0.5) - 2 * np.log(2 * np.pi * variance) - 2
    assert kmeans_bic(X, labels, centers) == pytest.approx(-2 * log_likelihood + 4 * np.log(4))


def test_kmeans_uses_minibatch_above_threshold_and_predicts_in_chunks(blobs):
    X, _ = blobs
    small = KMeansClusterer(4, n_init=2, minibatch_threshold=10_000, random_state=0).fit(X)
    assert small.algorithm_ == "kmeans"
    reference = KMeans(4, n_init=2, random_state=0).fit(X)
    np.testing.assert_allclose(small.cluster_centers_, reference.cluster_centers_, atol=1e-4)
    big = KMeansClusterer(4, n_init=2, minibatch_threshold=100, batch_size=128, random_state=0).fit(X)
    assert big.algorithm_ == "minibatch_kmeans"
    assert clustering_scores(small.labels_, big.labels_)["ari"] == pytest.approx(1.0)
    labels, distances = nearest_centers(X, small.cluster_centers_, chunk_rows=7)
    np.testing.assert_array_equal(labels, reference.predict(X))
    np.testing.assert_allclose(distances, small.transform(X).min(axis=1), atol=1e-5)
    streamed = KMeansClusterer(4, n_init=1, batch_size=200, random_state=0)
    for _ in range(5):
        for lo in range(0, len(X), 200):
            streamed.partial_fit(X[lo:lo + 200])
    assert clustering_scores(small.labels_, streamed.predict(X))["ari"] > 0.95


def test_mixture_state_round_trip_gives_same_probabilities(blobs):
    X, _ = blobs
    for covariance in ("full", "diag", "tied", "spherical"):
        gmm = GaussianMixtureClusterer(4, covariance_type=covariance, random_state=0).fit(X)
        state, arrays = gmm.get_state()
        restored = GaussianMixtureClusterer.from_state(state, arrays)
        np.testing.assert_allclose(restored.predict_proba(X), gmm.predict_proba(X), atol=1e-10)


def test_hdbscan_finds_the_blobs_and_assigns_everyone(blobs):
    X, y = blobs
    hdb = HDBSCANClusterer(min_cluster_size=30, max_fit_samples=400, random_state=0).fit(X)
    assert hdb.n_clusters == 4
    assert hdb.labels_.min() >= 0 and len(hdb.labels_) == len(X)
    assert clustering_scores(y, hdb.labels_)["ari"] > 0.95
    np.testing.assert_array_equal(hdb.predict(X[:10]), nearest_centers(X[:10], hdb.cluster_centers_)[0])


def test_preprocessor_standardises_then_projects():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)) * np.array([1, 10, 100, 1, 1, 1])
    pre = Preprocessor("standard", 3).fit(X)
    Z = pre.transform(X)
    assert Z.shape == (200, 3)
    standardised = (X - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(np.var(Z, axis=0).sum() <= np.var(standardised, axis=0).sum() + 1e-6, True)
    state, arrays = pre.get_state()
    np.testing.assert_allclose(Preprocessor.from_state(state, arrays).transform(X), Z, atol=1e-6)
    unit = Preprocessor("l2").fit_transform(X)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    kept = Preprocessor("standard", 0.9).fit(X)
    assert kept.explained_variance_ratio_ >= 0.9


def test_hungarian_accuracy_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = [1, 1, 0, 0, 0, 0]
    # Contingency: segment 0 -> a:1 b:2 c:1, segment 1 -> a:2; best matching 0->b, 1->a: 4 of 6.
    assert hungarian_accuracy(truth, pred) == pytest.approx(4 / 6)
    scores = clustering_scores(truth, pred)
    assert set(scores) >= {"nmi", "ari", "accuracy", "v_measure", "homogeneity", "completeness"}
    assert scores["n_segments"] == 2 and scores["n_labels"] == 3


def test_scores_are_invariant_to_segment_numbering():
    truth = np.array([0, 0, 1, 1, 2, 2])
    scores = clustering_scores(truth, np.array([5, 5, 3, 3, 9, 9]))
    assert (scores["nmi"], scores["ari"], scores["accuracy"], scores["v_measure"]) == pytest.approx((1, 1, 1, 1))
    with pytest.raises(ValueError, match="one length"):
        clustering_scores([0, 1], [0])
