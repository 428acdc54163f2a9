"""Analyst features (age groups, income quartiles), standardised tabular features, and their fusion with text.

Each class is a small scikit-learn-style transformer whose learned state is plain numbers and strings
(``get_state`` / ``from_state``), so a fitted pipeline is saved as JSON and arrays, never as a pickle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AGE_GROUP = "age_group"
INCOME_QUARTILE = "income_quartile"
OTHER = "other"


def age_group_labels(bins: list[int]) -> list[str]:
    labels = [f"under {bins[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in zip(bins[:-1], bins[1:])]
    return labels + [f"{bins[-1]}+"]


class AnalystFeatures:
    """Adds ``age_group`` (fixed bins) and ``income_quartile`` (Q1..Q4, cut points learned at fit)."""

    def __init__(self, age_column: str | None = "age", age_bins: list[int] | None = None,
                 income_column: str | None = "annual_income"):
        self.age_column = age_column
        self.age_bins = age_bins
        self.income_column = income_column

    def fit(self, frame: pd.DataFrame) -> AnalystFeatures:
        self.derived_columns_ = []
        if self.age_column and self.age_column in frame.columns:
            self.derived_columns_.append(AGE_GROUP)
        self.income_edges_ = None
        if self.income_column and self.income_column in frame.columns:
            values = frame[self.income_column].astype(float)
            self.income_edges_ = [float(q) for q in np.nanquantile(values, [0.25, 0.5, 0.75])]
            self.derived_columns_.append(INCOME_QUARTILE)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        # Shallow: under copy-on-write the caller's columns are shared, not duplicated (a million-row
        # table is not held twice); only the derived columns are new.
        out = frame.copy(deep=False)
        if AGE_GROUP in self.derived_columns_:
            bins = list(self.age_bins or [18, 25, 35, 45, 55, 65])
            codes = np.searchsorted(np.asarray(bins, dtype=float), frame[self.age_column].astype(float), side="right")
            out[AGE_GROUP] = np.asarray(age_group_labels(bins), dtype=object)[codes]
        if INCOME_QUARTILE in self.derived_columns_:
            codes = np.searchsorted(np.asarray(self.income_edges_), frame[self.income_column].astype(float), side="right")
            out[INCOME_QUARTILE] = np.array(["Q1", "Q2", "Q3", "Q4"], dtype=object)[codes]
        return out

    def fit_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.fit(frame).transform(frame)

    def get_state(self) -> dict:
        return {"age_column": self.age_column, "age_bins": self.age_bins, "income_column": self.income_column,
                "derived_columns_": self.derived_columns_, "income_edges_": self.income_edges_}

    @classmethod
    def from_state(cls, state: dict) -> AnalystFeatures:
        self = cls(state["age_column"], state["age_bins"], state["income_column"])
        self.derived_columns_, self.income_edges_ = state["derived_columns_"], state["income_edges_"]
        return self


class TabularFeatures:
    """Standardised numerics (log1p first for skewed non-negative columns) and one-hot categoricals.

    Categories rarer than ``min_category_share`` at fit, and categories never seen, share one ``other``
    column, so rare values neither get a dimension of their own nor break ``transform`` on new data.
    """

    def __init__(self, numeric_columns: list[str], categorical_columns: list[str], log_transform: str = "auto",
                 min_category_share: float = 0.01):
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns
        self.log_transform = log_transform
        self.min_category_share = min_category_share

    def fit(self, frame: pd.DataFrame) -> TabularFeatures:
        if self.log_transform not in ("auto", "none"):
            raise ValueError(f"features.log_transform must be auto or none, got {self.log_transform!r}")
        self.log_columns_, self.means_, self.scales_ = [], [], []
        for column in self.numeric_columns:
            values = frame[column].to_numpy(dtype=float)
            if self.log_transform == "auto" and values.min() >= 0 and pd.Series(values).skew() > 1:
                self.log_columns_.append(column)
                values = np.log1p(values)
            std = float(values.std())
            self.means_.append(float(values.mean()))
            self.scales_.append(std if std > 0 else 1.0)
        self.categories_ = {}
        for column in self.categorical_columns:
            shares = frame[column].astype(str).value_counts(normalize=True, sort=False)
            kept = sorted(str(v) for v, share in shares.items() if share >= self.min_category_share)
            self.categories_[column] = kept + [OTHER] if len(kept) < len(shares) and OTHER not in kept else kept
        self.feature_names_ = list(self.numeric_columns) + [
            f"{column}={value}" for column, values in self.categories_.items() for value in values]
        return self

    def transform_numeric(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.numeric_columns:
            return np.zeros((len(frame), 0), dtype=np.float32)
        values = np.array(frame[self.numeric_columns].to_numpy(dtype=float), copy=True)
        for j, column in enumerate(self.numeric_columns):
            if column in self.log_columns_:
                values[:, j] = np.log1p(np.clip(values[:, j], 0, None))
        return ((values - np.asarray(self.means_)) / np.asarray(self.scales_)).astype(np.float32)

    def transform_categorical(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for column, categories in self.categories_.items():
            codes = pd.Categorical(frame[column].astype(str), categories=categories).codes.astype(np.int64)
            if OTHER in categories:  # unseen and rare values
                codes[codes < 0] = categories.index(OTHER)
            block = np.zeros((len(frame), len(categories)), dtype=np.float32)
            known = codes >= 0
            block[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0), dtype=np.float32)

    def get_state(self) -> dict:
        return {"numeric_columns": list(self.numeric_columns), "categorical_columns": list(self.categorical_columns),
                "log_transform": self.log_transform, "min_category_share": self.min_category_share,
                "log_columns_": self.log_columns_, "means_": self.means_, "scales_": self.scales_,
                "categories_": self.categories_, "feature_names_": self.feature_names_}

    @classmethod
    def from_state(cls, state: dict) -> TabularFeatures:
        self = cls(state["numeric_columns"], state["categorical_columns"], state["log_transform"],
                   state["min_category_share"])
        for key in ("log_columns_", "means_", "scales_", "categories_", "feature_names_"):
            setattr(self, key, state[key])
        return self


class BlockFusion:
    """Concatenate feature blocks, each scaled to unit total variance and then by ``sqrt(weight)``.

    Without the rescaling a block's influence on distances would depend on its width (15 standardised
    numerics outweigh one unit-length text embedding fifteen-fold); with it, ``weight`` is the block's
    share of the expected squared distance between two customers. Blocks of weight 0 are left out.
    """

    def __init__(self, weights: dict[str, float], sample_size: int = 100000, random_state: int = 0):
        self.weights = weights
        self.sample_size = sample_size
        self.random_state = random_state

    def fit(self, blocks: dict[str, np.ndarray]) -> BlockFusion:
        self.scales_ = {}
        rng = np.random.default_rng(self.random_state)
        for name, block in blocks.items():
            weight = float(self.weights.get(name, 0.0))
            if weight <= 0 or block.shape[1] == 0:
                continue
            rows = block if len(block) <= self.sample_size else block[rng.choice(len(block), self.sample_size, replace=False)]
            total_variance = float(np.asarray(rows, dtype=np.float64).var(axis=0).sum())
            if total_variance > 0:
                self.scales_[name] = float(np.sqrt(weight / total_variance))
        if not self.scales_:
            raise ValueError(f"no feature block with positive weight and variance among {list(blocks)}")
        return self

    def transform(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        missing = [name for name in self.scales_ if name not in blocks]
        if missing:
            raise ValueError(f"feature blocks {missing} were used at fit but are not given")
        return np.hstack([np.asarray(blocks[name], dtype=np.float32) * np.float32(scale)
                          for name, scale in self.scales_.items()])

    def get_state(self) -> dict:
        return {"weights": dict(self.weights), "sample_size": self.sample_size, "random_state": self.random_state,
                "scales_": self.scales_}

    @classmethod
    def from_state(cls, state: dict) -> BlockFusion:
        self = cls(state["weights"], state["sample_size"], state["random_state"])
        self.scales_ = state["scales_"]
        return self


class DominantDirectionRemoval:
    """Centre text embeddings and project out their dominant directions ("all-but-the-top").

    Transformer embeddings are often anisotropic: one or a few directions (word frequency, text length)
    carry most of the variance and say little about content, and a clusterer would split customers along
    them. Leading principal components are removed while each explains more than ``max_share`` of the
    variance that is left, at most ``max_components`` of them; an embedding without such directions
    (TF-IDF + SVD, well-trained sentence encoders) is only centred. Fitted on at most ``sample_size`` rows.
    """

    def __init__(self, max_share: float = 0.25, max_components: int = 10, sample_size: int = 50000,
                 random_state: int = 0):
        self.max_share = max_share
        self.max_components = max_components
        self.sample_size = sample_size
        self.random_state = random_state

    def fit(self, embeddings: np.ndarray) -> DominantDirectionRemoval:
        X = np.asarray(embeddings, dtype=np.float64)
        if len(X) > self.sample_size:
            X = X[np.random.default_rng(self.random_state).choice(len(X), self.sample_size, replace=False)]
        self.mean_ = X.mean(axis=0)
        _, singular, directions = np.linalg.svd(X - self.mean_, full_matrices=False)
        variances = singular ** 2
        removed = 0
        while removed < min(self.max_components, len(variances) - 1):
            left = variances[removed:].sum()
            if left <= 0 or variances[removed] / left <= self.max_share:
                break
            removed += 1
        self.components_ = directions[:removed]
        self.removed_share_ = float(variances[:removed].sum() / variances.sum()) if variances.sum() > 0 else 0.0
        return self

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        X = np.asarray(embeddings, dtype=np.float32) - self.mean_.astype(np.float32)
        if len(self.components_):
            components = self.components_.astype(np.float32)
            X = X - (X @ components.T) @ components
        return X

    def fit_transform(self, embeddings: np.ndarray) -> np.ndarray:
        return self.fit(embeddings).transform(embeddings)

    def get_state(self) -> tuple[dict, dict]:
        params = {"max_share": self.max_share, "max_components": self.max_components,
                  "sample_size": self.sample_size, "random_state": self.random_state}
        return {"params": params, "removed_share_": self.removed_share_}, \
            {"mean_": self.mean_, "components_": np.asarray(self.components_).reshape(-1, len(self.mean_))}

    @classmethod
    def from_state(cls, state: dict, arrays: dict) -> DominantDirectionRemoval:
        self = cls(**state["params"])
        self.removed_share_ = state["removed_share_"]
        self.mean_, self.components_ = arrays["mean_"], arrays["components_"]
        return self
