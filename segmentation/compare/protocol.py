"""The evaluation protocol: clustering of the test split and linear probes, identical for every encoder.

* Clustering (unsupervised): K-Means and MiniBatchKMeans (as MTEB's clustering tasks) with k = number of
  test labels on L2-normalised test embeddings, scored by NMI, ARI, Hungarian accuracy and V-measure
  (``segmentation.metrics.clustering_scores``).
* Linear probe: logistic regression on frozen training embeddings with every training label; accuracy
  and macro-F1 on the test split.
* Few-shot probe (MTEB's classification protocol): ``shots`` training examples per label, ``draws``
  independent draws, mean (and spread) of accuracy and macro-F1.

Randomness comes from the evaluation seed only, so every encoder meets the same initialisations and the
same few-shot examples.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from segmentation.compare.config import ClusteringProtocolConfig, ProbeConfig
from segmentation.metrics import clustering_scores

CLUSTERING_ALGORITHMS = ("kmeans", "minibatch_kmeans")
CLUSTERING_METRICS = ("nmi", "ari", "accuracy", "v_measure")
PROBE_METRICS = ("accuracy", "macro_f1")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def cluster(embeddings: np.ndarray, k: int, algorithm: str, seed: int, n_init: int = 1,
            minibatch_size: int = 500) -> np.ndarray:
    """Cluster labels of ``embeddings`` into ``k`` clusters."""
    if algorithm == "kmeans":
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    elif algorithm == "minibatch_kmeans":
        model = MiniBatchKMeans(n_clusters=k, n_init=n_init, batch_size=minibatch_size, random_state=seed)
    else:
        raise ValueError(f"clustering.algorithms: unknown {algorithm!r}; use {list(CLUSTERING_ALGORITHMS)}")
    if k > len(embeddings):
        raise ValueError(f"cannot form k={k} clusters from {len(embeddings)} test texts")
    return model.fit_predict(embeddings)


def clustering_protocol(embeddings: np.ndarray, labels: np.ndarray, cfg: ClusteringProtocolConfig,
                        seed: int) -> dict[str, dict]:
    """Scores per algorithm: ``{"kmeans": {"nmi": ..., "ari": ..., "accuracy": ..., "v_measure": ...}, ...}``."""
    k = cfg.k or int(len(np.unique(labels)))
    vectors = l2_normalize(embeddings) if cfg.l2_normalize else np.asarray(embeddings, dtype=np.float32)
    return {algorithm: {**clustering_scores(labels, cluster(vectors, k, algorithm, seed, cfg.n_init,
                                                            cfg.minibatch_size)), "k": k}
            for algorithm in cfg.algorithms}


def probe_scores(y_true, y_pred) -> dict[str, float]:
    """Accuracy and macro-F1 (the unweighted mean of per-label F1, labels of either side)."""
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def few_shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """``shots`` row indices per label (all rows of a rarer label), drawn without replacement, sorted."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = [rng.choice(np.flatnonzero(labels == label), size=min(shots, int((labels == label).sum())), replace=False)
              for label in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def _fit_predict(cfg: ProbeConfig, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # MTEB's few-shot probe stops at 100 iterations on purpose; the warning would repeat for every draw.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=cfg.C, max_iter=cfg.max_iter).fit(train_x, train_y).predict(test_x)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 cfg: ProbeConfig, seed: int = 0) -> dict:
    """Logistic regression on frozen embeddings: every training row, or ``cfg.shots`` per label x ``cfg.draws``."""
    if cfg.l2_normalize:
        train_x, test_x = l2_normalize(train_x), l2_normalize(test_x)
    if not cfg.shots:
        return {**probe_scores(test_y, _fit_predict(cfg, train_x, train_y, test_x)), "n_train": int(len(train_y))}
    if cfg.draws < 1:
        raise ValueError(f"few_shot.draws must be at least 1, got {cfg.draws}")
    runs = []
    for draw in range(cfg.draws):
        # One stream per (seed, draw): draw i is the same for every encoder and does not depend on cfg.draws.
        index = few_shot_indices(train_y, cfg.shots, np.random.SeedSequence([seed, draw]).generate_state(1)[0])
        runs.append(probe_scores(test_y, _fit_predict(cfg, train_x[index], train_y[index], test_x)))
    out = {name: float(np.mean([r[name] for r in runs])) for name in PROBE_METRICS}
    out.update({f"{name}_std": float(np.std([r[name] for r in runs])) for name in PROBE_METRICS})
    out.update(shots=int(cfg.shots), draws=int(cfg.draws), n_train=int(len(index)))
    return out
