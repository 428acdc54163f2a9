"""Choosing the number of segments k: silhouette, BIC and bootstrap stability, and one documented rule.

For every k in the range, three numbers are measured:

- silhouette: mean silhouette of the clustering fitted on all rows (on the selection sample for large
  tables), computed on a random sample of ``silhouette_sample`` rows, so it never costs O(n^2);
- BIC (lower is better): the mixture's own; for K-Means, the BIC of the equivalent model of spherical
  Gaussians with one shared variance (as in X-means), computed from the fit at no extra cost;
- stability: the clusterer is refitted on ``runs`` bootstrap resamples of ``stability_sample`` rows; each
  fit labels one fixed evaluation sample, and stability is the mean adjusted Rand index over all pairs of
  runs (1 = the same segments every time).

The rule (separation makes a shortlist; the finest reproducible segmentation on it wins):

1. shortlist: for K-Means, every k whose silhouette is at least (1 - ``tolerance``) x the best
   silhouette; for the mixture, every k whose BIC is within ``bic_tolerance`` (default 10, "very strong
   evidence" on the Kass-Raftery scale) of the lowest;
2. chosen: the largest shortlisted k whose stability is at least ``min_stability``;
3. when no shortlisted k is that stable: the most stable shortlisted k, and the report warns that these
   segments may not reproduce.

Why: the silhouette is often nearly flat around the true k (merging two neighbouring groups, or splitting
one, barely changes it), so on its own it picks among near-ties by noise. Stability separates the two
cases: a split that is not in the data is not reproducible across resamples, whereas a merge of two
neighbouring groups is (the same two merge every time), so among near-ties the finest k that still
reproduces is the structure that is there, and the one an analyst can act on.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import adjusted_rand_score, silhouette_score

log = logging.getLogger(__name__)


@dataclass
class KSelection:
    method: str
    k_values: list[int]
    silhouette: list[float]
    stability: list[float]
    bic: list[float | None]
    inertia: list[float | None]
    chosen_k: int
    rule: str
    shortlist: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def kmeans_bic(X: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> float:
    """BIC of a K-Means solution read as a mixture of spherical Gaussians with one shared variance.

    Log-likelihood: sum_i log(n_c(i) / n) - (n d / 2) log(2 pi s2) - n d / 2 with s2 = SSE / (n d);
    free parameters: k d means, k - 1 weights, one variance.
    """
    n, d = X.shape
    k = len(centers)
    sse = 0.0
    for lo in range(0, n, 65536):
        block = np.asarray(X[lo:lo + 65536], dtype=np.float64)
        sse += float(((block - centers[labels[lo:lo + 65536]]) ** 2).sum())
    variance = max(sse / (n * d), 1e-12)
    sizes = np.bincount(labels, minlength=k)
    log_likelihood = float((sizes[sizes > 0] * np.log(sizes[sizes > 0] / n)).sum()) \
        - n * d / 2 * np.log(2 * np.pi * variance) - n * d / 2
    parameters = k * d + (k - 1) + 1
    return float(-2 * log_likelihood + parameters * np.log(n))


def stability_score(make, X: np.ndarray, k: int, runs: int, sample: int, random_state: int) -> float:
    """Mean pairwise ARI between ``runs`` fits on bootstrap resamples, compared on one fixed evaluation sample."""
    rng = np.random.default_rng(random_state)
    size = min(len(X), sample)
    evaluation = X[rng.choice(len(X), size, replace=False)]
    labelings = []
    for run in range(runs):
        resample = X[rng.choice(len(X), size, replace=True)]
        labelings.append(make(k, random_state + 1 + run).fit(resample).predict(evaluation))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(labelings, 2)]))


def choose_k(method: str, k_values: list[int], silhouette: list[float], bic: list[float | None],
             stability: list[float], min_stability: float, tolerance: float,
             bic_tolerance: float = 10.0) -> tuple[int, list[int], str]:
    """Apply the rule of this module's docstring; returns (k, shortlist, the rule as applied, in words)."""
    if method == "gmm":
        lowest = min(bic)
        shortlist = [k for k, b in zip(k_values, bic) if b - lowest <= bic_tolerance]
        why = f"BIC within {bic_tolerance:g} of the lowest ({lowest:.1f})"
    else:
        best = max(silhouette)
        shortlist = [k for k, v in zip(k_values, silhouette) if v >= best - tolerance * abs(best)]
        why = f"silhouette within {tolerance:.0%} of the best ({best:.3f})"
    stability_of = dict(zip(k_values, stability))
    stable = [k for k in shortlist if stability_of[k] >= min_stability]
    if stable:
        chosen = max(stable)
        text = (f"shortlist ({why}): k in {shortlist}; stable among them (stability >= {min_stability}): {stable}; "
                f"chosen: the largest, k = {chosen}")
    else:
        chosen = max(shortlist, key=lambda k: (stability_of[k], k))
        text = (f"shortlist ({why}): k in {shortlist}; none reaches stability {min_stability}; chosen: the most "
                f"stable, k = {chosen} (stability {stability_of[chosen]:.2f}); warning: these segments may not "
                "reproduce on other samples")
    return chosen, shortlist, text


def select_k(X: np.ndarray, make, k_values: list[int], method: str = "kmeans", silhouette_sample: int = 5000,
             stability_runs: int = 8, stability_sample: int = 2000, min_stability: float = 0.9,
             tolerance: float = 0.05, selection_sample: int = 50000, random_state: int = 0,
             progress: bool = True, bic_tolerance: float = 10.0) -> KSelection:
    """Measure silhouette, BIC and stability for each k and choose one.

    ``make(k, random_state)`` returns an unfitted clusterer with k segments.
    """
    from tqdm.auto import tqdm

    k_values = sorted({int(k) for k in k_values if 2 <= k < len(X)})
    if not k_values:
        raise ValueError(f"no k in the range to try for {len(X)} customers; set cluster.k_min/k_max or cluster.k")
    rng = np.random.default_rng(random_state)
    if len(X) > selection_sample:
        X = X[np.sort(rng.choice(len(X), selection_sample, replace=False))]
    silhouettes, stabilities, bics, inertias = [], [], [], []
    for k in tqdm(k_values, desc="choosing k", unit="candidate", disable=not progress):
        model = make(k, random_state).fit(X)
        labels = model.labels_
        if len(np.unique(labels)) > 1:
            silhouettes.append(float(silhouette_score(X, labels, sample_size=min(len(X), silhouette_sample),
                                                      random_state=random_state)))
        else:
            silhouettes.append(-1.0)
        bics.append(model.bic(X) if hasattr(model, "bic") else kmeans_bic(X, labels, model.cluster_centers_))
        inertias.append(getattr(model, "inertia_", None))
        stabilities.append(stability_score(make, X, k, stability_runs, stability_sample, random_state))
        log.info("k=%d silhouette=%.3f stability=%.3f bic=%s", k, silhouettes[-1], stabilities[-1], bics[-1])
    chosen, shortlist, rule = choose_k(method, k_values, silhouettes, bics, stabilities, min_stability, tolerance,
                                       bic_tolerance)
    return KSelection(method=method, k_values=k_values, silhouette=silhouettes, stability=stabilities, bic=bics,
                      inertia=inertias, chosen_k=chosen, rule=rule, shortlist=shortlist)
