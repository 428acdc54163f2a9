"""Clustering estimators with scikit-learn conventions, and the preprocessing that may precede them.

    KMeansClusterer        K-Means, or MiniBatchKMeans from ``minibatch_threshold`` rows (and ``partial_fit``)
    GaussianMixtureClusterer  soft assignments (``predict_proba``) and ``bic``
    HDBSCANClusterer       finds the number of segments itself; fitted on a sample for large tables
    Preprocessor           optional row/column normalisation, then optional PCA

Every estimator takes its parameters in ``__init__`` only, learns attributes ending in ``_`` in ``fit``,
exposes ``cluster_centers_`` and assigns new rows in chunks (memory stays flat for millions of rows). The
learned state is arrays and numbers (``get_state`` / ``from_state``), saved without pickle.
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 65536


def nearest_centers(X: np.ndarray, centers: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centre for each row, computed chunk by chunk."""
    labels = np.empty(len(X), dtype=np.int64)
    distances = np.empty(len(X), dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    center_norms = (centers ** 2).sum(axis=1)
    for lo in range(0, len(X), chunk_rows):
        block = np.asarray(X[lo:lo + chunk_rows], dtype=np.float64)
        squared = (block ** 2).sum(axis=1, keepdims=True) - 2 * block @ centers.T + center_norms
        labels[lo:lo + len(block)] = squared.argmin(axis=1)
        distances[lo:lo + len(block)] = np.sqrt(np.maximum(squared.min(axis=1), 0))
    return labels, distances


def center_distances(X: np.ndarray, centers: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Euclidean distances from every row to every centre, shape (n, k)."""
    out = np.empty((len(X), len(centers)), dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    center_norms = (centers ** 2).sum(axis=1)
    for lo in range(0, len(X), chunk_rows):
        block = np.asarray(X[lo:lo + chunk_rows], dtype=np.float64)
        squared = (block ** 2).sum(axis=1, keepdims=True) - 2 * block @ centers.T + center_norms
        out[lo:lo + len(block)] = np.sqrt(np.maximum(squared, 0))
    return out


class _CentroidAssignment:
    """Shared by estimators whose assignment of new rows is 'nearest centre'."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return nearest_centers(X, self.cluster_centers_)[0]

    def transform(self, X: np.ndarray) -> np.ndarray:
        return center_distances(X, self.cluster_centers_)

    def fit_predict(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).labels_


class KMeansClusterer(_CentroidAssignment):
    """K-Means; MiniBatchKMeans at ``minibatch_threshold`` rows or more, or when fed by ``partial_fit``."""

    def __init__(self, n_clusters: int = 8, n_init: int = 4, minibatch_threshold: int = 50000,
                 batch_size: int = 4096, max_iter: int = 300, random_state: int | None = 0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.minibatch_threshold = minibatch_threshold
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.random_state = random_state

    def _minibatch(self):
        from sklearn.cluster import MiniBatchKMeans

        return MiniBatchKMeans(n_clusters=self.n_clusters, batch_size=self.batch_size, n_init=self.n_init,
                               max_iter=self.max_iter, random_state=self.random_state)

    def fit(self, X: np.ndarray, y=None) -> KMeansClusterer:
        from sklearn.cluster import KMeans

        if len(X) < self.n_clusters:
            raise ValueError(f"cannot make {self.n_clusters} segments from {len(X)} customers")
        if len(X) >= self.minibatch_threshold:
            estimator, self.algorithm_ = self._minibatch(), "minibatch_kmeans"
        else:
            estimator = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, max_iter=self.max_iter,
                               random_state=self.random_state)
            self.algorithm_ = "kmeans"
        estimator.fit(X)
        self.cluster_centers_ = estimator.cluster_centers_.astype(np.float64)
        # MiniBatchKMeans' labels_ come from the last mini-batch pass; recompute them against the final centres.
        self.labels_, distances = nearest_centers(X, self.cluster_centers_)
        self.inertia_ = float((distances ** 2).sum())
        return self

    def partial_fit(self, X: np.ndarray, y=None) -> KMeansClusterer:
        """One mini-batch step, for tables streamed in chunks (labels_ is left to ``predict``)."""
        if not hasattr(self, "_stream"):
            self._stream = self._minibatch()
            self.algorithm_ = "minibatch_kmeans"
        self._stream.partial_fit(X)
        self.cluster_centers_ = self._stream.cluster_centers_.astype(np.float64)
        return self

    def get_state(self) -> tuple[dict, dict]:
        params = {"n_clusters": self.n_clusters, "n_init": self.n_init, "minibatch_threshold": self.minibatch_threshold,
                  "batch_size": self.batch_size, "max_iter": self.max_iter, "random_state": self.random_state}
        return {"params": params, "algorithm_": self.algorithm_, "inertia_": getattr(self, "inertia_", None)}, \
            {"cluster_centers_": self.cluster_centers_}

    @classmethod
    def from_state(cls, state: dict, arrays: dict) -> KMeansClusterer:
        self = cls(**state["params"])
        self.algorithm_, self.inertia_ = state["algorithm_"], state["inertia_"]
        self.cluster_centers_ = arrays["cluster_centers_"]
        return self


class GaussianMixtureClusterer:
    """A Gaussian mixture: probabilities per segment and a BIC for choosing k."""

    def __init__(self, n_components: int = 8, covariance_type: str = "diag", n_init: int = 1, max_iter: int = 200,
                 reg_covar: float = 1e-6, random_state: int | None = 0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.random_state = random_state

    @property
    def n_clusters(self) -> int:
        return self.n_components

    def fit(self, X: np.ndarray, y=None) -> GaussianMixtureClusterer:
        from sklearn.mixture import GaussianMixture

        if len(X) < self.n_components:
            raise ValueError(f"cannot make {self.n_components} segments from {len(X)} customers")
        self.estimator_ = GaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type,
                                          n_init=self.n_init, max_iter=self.max_iter, reg_covar=self.reg_covar,
                                          random_state=self.random_state).fit(X)
        self.cluster_centers_ = self.estimator_.means_.astype(np.float64)
        self.labels_ = self.predict(X)
        self.converged_ = bool(self.estimator_.converged_)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.vstack([self.estimator_.predict_proba(X[lo:lo + CHUNK_ROWS]) for lo in range(0, len(X), CHUNK_ROWS)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return center_distances(X, self.cluster_centers_)

    def fit_predict(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).labels_

    def bic(self, X: np.ndarray) -> float:
        return float(self.estimator_.bic(X))

    def get_state(self) -> tuple[dict, dict]:
        params = {"n_components": self.n_components, "covariance_type": self.covariance_type, "n_init": self.n_init,
                  "max_iter": self.max_iter, "reg_covar": self.reg_covar, "random_state": self.random_state}
        arrays = {name: np.asarray(getattr(self.estimator_, name), dtype=np.float64)
                  for name in ("weights_", "means_", "covariances_", "precisions_cholesky_")}
        return {"params": params, "converged_": self.converged_}, arrays

    @classmethod
    def from_state(cls, state: dict, arrays: dict) -> GaussianMixtureClusterer:
        from sklearn.mixture import GaussianMixture

        self = cls(**state["params"])
        estimator = GaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type)
        for name, value in arrays.items():
            setattr(estimator, name, value)
        # What sklearn derives from the Cholesky factors when it finishes fitting.
        cholesky = arrays["precisions_cholesky_"]
        if self.covariance_type == "full":
            estimator.precisions_ = np.einsum("kij,klj->kil", cholesky, cholesky)
        elif self.covariance_type == "tied":
            estimator.precisions_ = cholesky @ cholesky.T
        else:
            estimator.precisions_ = cholesky ** 2
        estimator.n_features_in_ = arrays["means_"].shape[1]
        self.estimator_, self.converged_ = estimator, state["converged_"]
        self.cluster_centers_ = arrays["means_"]
        return self


class HDBSCANClusterer(_CentroidAssignment):
    """HDBSCAN: density-based, finds the number of segments and flags outliers.

    Every customer still gets a segment (the nearest centroid), outliers included, and ``noise_`` marks
    the rows HDBSCAN left unclustered. Above ``max_fit_samples`` rows HDBSCAN runs on a random sample
    (its cost grows faster than linearly) and the remaining rows are assigned to the nearest centroid.
    """

    def __init__(self, min_cluster_size: int = 50, min_samples: int | None = None, max_fit_samples: int = 20000,
                 random_state: int | None = 0):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def fit(self, X: np.ndarray, y=None) -> HDBSCANClusterer:
        from sklearn.cluster import HDBSCAN

        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(len(X), self.max_fit_samples, replace=False)) if len(X) > self.max_fit_samples \
            else np.arange(len(X))
        # copy=False: the sample below is already a fresh array HDBSCAN may overwrite.
        estimator = HDBSCAN(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                            store_centers="centroid", copy=False).fit(np.asarray(X[sample], dtype=np.float64))
        if not len(getattr(estimator, "centroids_", [])):
            raise ValueError(f"HDBSCAN found no segment (every customer is noise); lower cluster.min_cluster_size "
                             f"(now {self.min_cluster_size})")
        self.cluster_centers_ = estimator.centroids_.astype(np.float64)
        self.n_clusters = len(self.cluster_centers_)
        self.labels_, _ = nearest_centers(X, self.cluster_centers_)
        self.noise_ = np.zeros(len(X), dtype=bool)
        self.noise_[sample[estimator.labels_ < 0]] = True
        self.labels_[sample[estimator.labels_ >= 0]] = estimator.labels_[estimator.labels_ >= 0]
        return self

    def get_state(self) -> tuple[dict, dict]:
        params = {"min_cluster_size": self.min_cluster_size, "min_samples": self.min_samples,
                  "max_fit_samples": self.max_fit_samples, "random_state": self.random_state}
        return {"params": params}, {"cluster_centers_": self.cluster_centers_}

    @classmethod
    def from_state(cls, state: dict, arrays: dict) -> HDBSCANClusterer:
        self = cls(**state["params"])
        self.cluster_centers_ = arrays["cluster_centers_"]
        self.n_clusters = len(self.cluster_centers_)
        return self


CLUSTERERS = {"kmeans": KMeansClusterer, "gmm": GaussianMixtureClusterer, "hdbscan": HDBSCANClusterer}


def make_clusterer(method: str, n_clusters: int | None, cfg, random_state: int = 0):
    """The estimator for ``cluster.method`` with ``n_clusters`` segments (ignored by HDBSCAN)."""
    if method == "kmeans":
        return KMeansClusterer(n_clusters, cfg.n_init, cfg.minibatch_threshold, cfg.minibatch_size,
                               random_state=random_state)
    if method == "gmm":
        return GaussianMixtureClusterer(n_clusters, cfg.covariance_type, max(1, cfg.n_init // 2), random_state=random_state)
    if method == "hdbscan":
        return HDBSCANClusterer(cfg.min_cluster_size, cfg.min_samples, cfg.max_fit_samples, random_state)
    raise ValueError(f"cluster.method must be one of {sorted(CLUSTERERS)}, got {method!r}")


class Preprocessor:
    """Optional normalisation (``l2`` rows or ``standard`` columns) followed by optional PCA.

    ``pca_components`` is a number of components or, as a float in (0, 1), the share of variance to keep.
    PCA is fitted on at most ``max_fit_samples`` rows.
    """

    def __init__(self, normalize: str = "none", pca_components: int | float | None = None,
                 max_fit_samples: int = 100000, random_state: int | None = 0):
        self.normalize = normalize
        self.pca_components = pca_components
        self.max_fit_samples = max_fit_samples
        self.random_state = random_state

    def fit(self, X: np.ndarray, y=None) -> Preprocessor:
        if self.normalize not in ("none", "l2", "standard"):
            raise ValueError(f"cluster.normalize must be none, l2 or standard, got {self.normalize!r}")
        X = np.asarray(X, dtype=np.float32)
        self.mean_ = self.scale_ = None
        if self.normalize == "standard":
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            std = X.std(axis=0, dtype=np.float64)
            self.scale_ = np.where(std > 0, std, 1.0)
        self.components_ = self.pca_mean_ = None
        if self.pca_components:
            from sklearn.decomposition import PCA

            Z = self._normalize(X)
            if len(Z) > self.max_fit_samples:
                rng = np.random.default_rng(self.random_state)
                Z = Z[rng.choice(len(Z), self.max_fit_samples, replace=False)]
            n = self.pca_components
            if isinstance(n, float) and not 0 < n < 1 and float(n).is_integer():
                n = int(n)
            if isinstance(n, int):
                n = min(n, Z.shape[1], len(Z))
            pca = PCA(n_components=n, random_state=self.random_state).fit(Z)
            self.components_, self.pca_mean_ = pca.components_.astype(np.float32), pca.mean_.astype(np.float32)
            self.explained_variance_ratio_ = float(pca.explained_variance_ratio_.sum())
        return self

    def _normalize(self, X: np.ndarray) -> np.ndarray:
        if self.normalize == "l2":
            return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        if self.normalize == "standard":
            return ((X - self.mean_) / self.scale_).astype(np.float32)
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = self._normalize(np.asarray(X, dtype=np.float32))
        if self.components_ is not None:
            Z = (Z - self.pca_mean_) @ self.components_.T
        return np.asarray(Z, dtype=np.float32)

    def fit_transform(self, X: np.ndarray, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def get_state(self) -> tuple[dict, dict]:
        arrays = {k: np.asarray(v) for k, v in (("mean_", self.mean_), ("scale_", self.scale_),
                                                  ("components_", self.components_), ("pca_mean_", self.pca_mean_))
                  if v is not None}
        params = {"normalize": self.normalize, "pca_components": self.pca_components,
                  "max_fit_samples": self.max_fit_samples, "random_state": self.random_state}
        return {"params": params}, arrays

    @classmethod
    def from_state(cls, state: dict, arrays: dict) -> Preprocessor:
        self = cls(**state["params"])
        for name in ("mean_", "scale_", "components_", "pca_mean_"):
            setattr(self, name, arrays.get(name))
        return self
