"""Per-customer product categories: the segment's purchase propensity combined with the customer's predicted needs.

For customer i in segment s and category c (categories: the ``purchases_<c>`` columns):

    propensity[s, c] = (purchases of c by members of s + smoothing) / (all purchases by members of s + C * smoothing)
    score[i, c]      = need_weight * log P_i(c) + (1 - need_weight) * log propensity[s, c]

``P_i(c)`` is the need head's probability of category c for the customer (a multi-class next-category
head, or a multi-label head's per-category probabilities; any per-customer scaling leaves the ranking
unchanged), floored at 1e-6; without a need head the ranking is the segment's propensity alone. The
most-popular baseline ranks every customer's categories by their share of all purchases.

Evaluation: hit rate@k = share of customers with at least one held-out purchase among their top k;
recall@k = share of a customer's held-out categories found in the top k, averaged over customers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FLOOR = 1e-6


def purchase_columns(columns, prefix: str) -> list[str]:
    return [c for c in columns if str(c).startswith(prefix) and len(str(c)) > len(prefix)]


class SegmentRecommender:
    """Rank product categories per customer; scikit-learn-style ``fit``, learned attributes end in ``_``."""

    def __init__(self, purchase_prefix: str = "purchases_", need_weight: float = 0.5, smoothing: float = 1.0):
        self.purchase_prefix = purchase_prefix
        self.need_weight = need_weight
        self.smoothing = smoothing

    def fit(self, frame: pd.DataFrame, segments: np.ndarray, n_segments: int) -> SegmentRecommender:
        if not 0 <= self.need_weight <= 1:
            raise ValueError(f"recommend.need_weight must lie in [0, 1], got {self.need_weight}")
        self.columns_ = purchase_columns(frame.columns, self.purchase_prefix)
        if not self.columns_:
            raise ValueError(f"no purchase columns {self.purchase_prefix}<category> in the table (columns: "
                             f"{list(frame.columns)}); set recommend.purchase_prefix or recommend.enabled=false")
        self.categories_ = [c[len(self.purchase_prefix):] for c in self.columns_]
        counts = frame[self.columns_].to_numpy(dtype=np.float64)
        if (counts < 0).any():
            raise ValueError(f"purchase columns {self.columns_} hold negative counts")
        segments = np.asarray(segments, dtype=np.int64)
        totals = np.zeros((n_segments, len(self.columns_)))
        np.add.at(totals, segments, counts)
        smoothed = totals + self.smoothing
        self.propensity_ = smoothed / smoothed.sum(axis=1, keepdims=True)
        overall = counts.sum(axis=0) + self.smoothing
        self.popularity_ = overall / overall.sum()
        return self

    def align(self, classes: Sequence, proba: np.ndarray) -> np.ndarray:
        """A need head's probabilities in the order of ``categories_`` (FLOOR for categories it has no class for)."""
        position = {str(c): j for j, c in enumerate(classes)}
        out = np.full((len(proba), len(self.categories_)), FLOOR)
        for i, category in enumerate(self.categories_):
            if category in position:
                out[:, i] = proba[:, position[category]]
        return out

    def scores(self, segments: np.ndarray, needs: np.ndarray | None = None, need_weight: float | None = None) -> np.ndarray:
        """Log-scores (n, categories); ``needs`` aligned to ``categories_`` (see ``align``) or None.

        ``need_weight`` overrides the fitted weight (1: needs alone, 0: segment alone).
        """
        weight = self.need_weight if need_weight is None else need_weight
        log_propensity = np.log(self.propensity_[np.asarray(segments, dtype=np.int64)])
        if needs is None:
            return log_propensity
        return weight * np.log(np.maximum(needs, FLOOR)) + (1 - weight) * log_propensity

    def rank(self, segments: np.ndarray, needs: np.ndarray | None = None, need_weight: float | None = None) -> np.ndarray:
        """Category indices, best first, one row per customer."""
        return np.argsort(-self.scores(segments, needs, need_weight), axis=1, kind="stable")

    def recommend(self, segments: np.ndarray, needs: np.ndarray | None = None, top_k: int = 3) -> list[list[str]]:
        return [[self.categories_[j] for j in row[:top_k]] for row in self.rank(segments, needs)]

    def popular(self, n: int) -> np.ndarray:
        """The most-popular baseline's ranking for ``n`` customers."""
        return np.tile(np.argsort(-self.popularity_, kind="stable"), (n, 1))

    def get_state(self) -> dict:
        return {"purchase_prefix": self.purchase_prefix, "need_weight": self.need_weight, "smoothing": self.smoothing,
                "columns_": self.columns_, "categories_": self.categories_,
                "propensity_": self.propensity_.tolist(), "popularity_": self.popularity_.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> SegmentRecommender:
        self = cls(state["purchase_prefix"], state["need_weight"], state["smoothing"])
        self.columns_, self.categories_ = state["columns_"], state["categories_"]
        self.propensity_ = np.asarray(state["propensity_"])
        self.popularity_ = np.asarray(state["popularity_"])
        return self


def ranking_scores(ranking: np.ndarray, categories: Sequence[str], held_out: Sequence[set[str]],
                   ks: Sequence[int]) -> dict[str, float]:
    """Hit rate@k and recall@k of category rankings against each customer's held-out purchases.

    Customers without a held-out purchase are left out.
    """
    position = {c: i for i, c in enumerate(categories)}
    truth = [{position[c] for c in basket if c in position} for basket in held_out]
    keep = [i for i, basket in enumerate(truth) if basket]
    out: dict[str, float] = {"n": len(keep)}
    for k in ks:
        hits, recalls = [], []
        for i in keep:
            top = set(ranking[i, :k].tolist())
            found = len(top & truth[i])
            hits.append(found > 0)
            recalls.append(found / len(truth[i]))
        out[f"hit_rate@{k}"] = float(np.mean(hits)) if keep else float("nan")
        out[f"recall@{k}"] = float(np.mean(recalls)) if keep else float("nan")
    return out


def find_need_target(recommender: SegmentRecommender, heads: dict, requested: str | None = None) -> str | None:
    """The need head whose classes are the categories: ``requested``, else the first that covers at least half."""
    if requested is not None:
        if requested not in heads:
            raise ValueError(f"recommend.need_target {requested!r} is not a fitted need head (have {sorted(heads)})")
        return requested
    categories = set(recommender.categories_)
    for spec, head in heads.items():
        if getattr(head.target, "kind", None) == "binary":
            continue
        overlap = len(categories & {str(c) for c in head.classes_})
        if overlap >= max(1, len(categories) / 2):
            return spec
    return None
