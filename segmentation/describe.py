"""What makes each segment different: numbers, categories, words, typical customers, and a short name.

Definitions (all against the whole population segmented):

- numeric lift = segment mean / population mean (None when the population mean is 0); standardised
  difference = (segment mean - population mean) / population standard deviation (ddof = 0);
- category lift = share of the value in the segment / share in the population; a value is
  over-represented at lift >= ``min_category_lift`` with at least ``min_category_count`` customers;
- class-based TF-IDF (as in BERTopic): the segment's documents are one document; for term t and segment
  c, tf(t, c) = count of t in c / all term counts in c, idf(t) = log(1 + A / f(t)) with A the average term
  count per segment and f(t) the count of t over all segments; score = tf x idf;
- examples: the customers nearest the segment centre, ids masked, text already scrubbed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from segmentation.privacy import mask_id
from segmentation.profiles import humanize

PLACEHOLDER = re.compile(r"\[[A-Z]+\]")  # scrubbing placeholders are not words of the customer
AMBIGUOUS_VALUES = {"yes", "no", "true", "false", "other", "unknown", "none", "(missing)", "0", "1"}


@dataclass
class NumericSignal:
    feature: str
    segment_mean: float
    population_mean: float
    lift: float | None
    std_diff: float


@dataclass
class CategorySignal:
    feature: str
    value: str
    count: int
    segment_share: float
    population_share: float
    lift: float


@dataclass
class Example:
    id: str
    distance: float
    text: str


@dataclass
class SegmentDescription:
    segment: int
    name: str
    size: int
    share: float
    numeric: list[NumericSignal] = field(default_factory=list)
    categories: list[CategorySignal] = field(default_factory=list)
    terms: list[tuple[str, float]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)

    def numeric_signal(self, feature: str) -> NumericSignal | None:
        return next((s for s in self.numeric if s.feature == feature), None)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SegmentDescription:
        return cls(segment=data["segment"], name=data["name"], size=data["size"], share=data["share"],
                   numeric=[NumericSignal(**s) for s in data["numeric"]],
                   categories=[CategorySignal(**s) for s in data["categories"]],
                   terms=[(t, s) for t, s in data["terms"]], examples=[Example(**e) for e in data["examples"]])


def numeric_signals(frame: pd.DataFrame, labels: np.ndarray, columns: Sequence[str]) -> dict[int, list[NumericSignal]]:
    """Per segment, every numeric feature against the population, strongest standardised difference first."""
    if not columns:
        return {int(s): [] for s in np.unique(labels)}
    values = frame[list(columns)].astype(float)
    population_mean = values.mean()
    population_std = values.std(ddof=0)
    segment_means = values.groupby(np.asarray(labels)).mean()
    out = {}
    for segment, means in segment_means.iterrows():
        signals = []
        for column in columns:
            mean, pop = float(means[column]), float(population_mean[column])
            std = float(population_std[column])
            signals.append(NumericSignal(column, mean, pop, mean / pop if pop != 0 else None,
                                         (mean - pop) / std if std > 0 else 0.0))
        out[int(segment)] = sorted(signals, key=lambda s: -abs(s.std_diff))
    return out


def category_signals(frame: pd.DataFrame, labels: np.ndarray, columns: Sequence[str], min_lift: float = 1.2,
                     min_count: int = 5) -> dict[int, list[CategorySignal]]:
    """Per segment, the over-represented category values, highest lift first."""
    labels = np.asarray(labels)
    out: dict[int, list[CategorySignal]] = {int(s): [] for s in np.unique(labels)}
    for column in columns:
        values = frame[column].astype(str).to_numpy()
        counts = pd.crosstab(labels, values)
        population_share = counts.sum(axis=0) / counts.to_numpy().sum()
        segment_share = counts.div(counts.sum(axis=1), axis=0)
        lift = segment_share / population_share
        for segment in counts.index:
            for value in counts.columns:
                count = int(counts.at[segment, value])
                if count >= min_count and lift.at[segment, value] >= min_lift:
                    out[int(segment)].append(CategorySignal(column, str(value), count, float(segment_share.at[segment, value]),
                                                            float(population_share[value]), float(lift.at[segment, value])))
    return {s: sorted(v, key=lambda c: (-c.lift, -c.count)) for s, v in out.items()}


def class_tfidf(texts: Sequence[str], labels: np.ndarray, top_n: int = 10, ngram_max: int = 2, min_df: int = 3,
                max_docs: int = 200000, random_state: int = 0) -> dict[int, list[tuple[str, float]]]:
    """The ``top_n`` most distinctive terms of each segment by class-based TF-IDF (English stop words removed)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    segments = np.unique(labels)
    if len(texts) > max_docs:  # sample first: only the sampled texts are read (and, if lazy, scrubbed)
        keep = np.sort(np.random.default_rng(random_state).choice(len(texts), max_docs, replace=False))
        texts, labels = [texts[i] for i in keep], labels[keep]
    texts = [PLACEHOLDER.sub(" ", t) for t in texts]
    vectorizer = CountVectorizer(ngram_range=(1, ngram_max), stop_words="english", min_df=min(min_df, len(texts)))
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no term survives (empty or stop-word-only texts)
        return {int(s): [] for s in segments}
    position = {s: i for i, s in enumerate(segments)}
    membership = sparse.csr_matrix((np.ones(len(labels)), ([position[s] for s in labels], np.arange(len(labels)))),
                                   shape=(len(segments), len(labels)))
    per_class = np.asarray((membership @ counts).todense(), dtype=np.float64)
    totals = per_class.sum(axis=1, keepdims=True)
    tf = np.divide(per_class, totals, out=np.zeros_like(per_class), where=totals > 0)
    term_totals = per_class.sum(axis=0)
    average = per_class.sum() / len(segments)
    idf = np.log(1 + average / np.maximum(term_totals, 1e-12))
    scores = tf * idf
    terms = vectorizer.get_feature_names_out()
    out = {}
    for segment, i in position.items():
        order = np.argsort(-scores[i], kind="stable")[:top_n]
        out[int(segment)] = [(str(terms[j]), float(scores[i, j])) for j in order if scores[i, j] > 0]
    return out


def nearest_examples(ids: Sequence[str], texts: Sequence[str], labels: np.ndarray, distances: np.ndarray,
                     n_examples: int = 3, max_chars: int = 160) -> dict[int, list[Example]]:
    """The ``n_examples`` customers nearest each segment centre, ids masked, texts cut to ``max_chars``."""
    labels, distances = np.asarray(labels), np.asarray(distances)
    out = {}
    for segment in np.unique(labels):
        members = np.flatnonzero(labels == segment)
        nearest = members[np.argsort(distances[members], kind="stable")[:n_examples]]
        out[int(segment)] = [Example(mask_id(ids[i]), float(distances[i]),
                                     texts[i] if len(texts[i]) <= max_chars else texts[i][:max_chars - 1] + "…")
                             for i in nearest]
    return out


def feature_label(feature: str, labels: dict[str, str]) -> str:
    return labels.get(feature) or humanize(feature)


def _category_part(signal: CategorySignal, labels: dict[str, str]) -> str:
    value = humanize(signal.value)
    if signal.feature in labels or value.lower() in AMBIGUOUS_VALUES or value[:1].isdigit() or value[:1] in "<>":
        return f"{feature_label(signal.feature, labels)} {value}"
    return value


def segment_name(description: SegmentDescription, labels: dict[str, str], min_std_diff: float = 0.5,
                 parts: int = 3, skip: int = 0) -> str:
    """A name from the strongest signals: numeric difference, over-represented category, distinctive term.

    ``skip`` drops the first candidates of each kind, to make a name that differs from another segment's.
    """
    # (text, the feature's display label): one part per feature, so "high age" is not followed by "age 65+".
    numeric = [(f"{'high' if s.std_diff > 0 else 'low'} {feature_label(s.feature, labels)}", feature_label(s.feature, labels))
               for s in description.numeric if abs(s.std_diff) >= min_std_diff]
    categories = [(_category_part(c, labels), feature_label(c.feature, labels)) for c in description.categories]
    terms = [(t, None) for t, _ in description.terms]
    kinds = [numeric[skip:], categories[skip:], terms[skip:]]
    chosen: list[str] = []
    used_features: set[str] = set()

    def fits(candidate: tuple[str, str | None]) -> bool:
        text, feature = candidate
        # Nothing new: a feature already named, or only words already in the name ("think using" after
        # "using card" and "think").
        words = set(text.lower().split())
        return feature not in used_features and not words <= {w for c in chosen for w in c.lower().split()}

    def take(candidate: tuple[str, str | None]) -> None:
        chosen.append(candidate[0])
        if candidate[1]:
            used_features.add(candidate[1])

    # One part of each kind first (number, category, word), then the strongest of what is left.
    for kind in kinds:
        candidate = next((c for c in kind if fits(c)), None)
        if candidate and len(chosen) < parts:
            take(candidate)
    for group in itertools.zip_longest(*kinds):
        for candidate in group:
            if candidate and len(chosen) < parts and fits(candidate):
                take(candidate)
    return " · ".join(chosen) if chosen else f"segment {description.segment}"


def name_segments(descriptions: list[SegmentDescription], labels: dict[str, str], min_std_diff: float = 0.5,
                  parts: int = 3) -> None:
    """Give every description a name, distinct across segments."""
    used: set[str] = set()
    for description in sorted(descriptions, key=lambda d: -d.size):
        for skip in range(4):
            name = segment_name(description, labels, min_std_diff, parts, skip)
            if name not in used:
                break
        else:
            name = f"{name} ({description.segment})"
        description.name = name
        used.add(name)


def describe_segments(frame: pd.DataFrame, labels: np.ndarray, distances: np.ndarray, ids: Sequence[str],
                      texts: Sequence[str], numeric_columns: Sequence[str], categorical_columns: Sequence[str],
                      cfg, feature_labels: dict[str, str] | None = None, random_state: int = 0) -> list[SegmentDescription]:
    """Describe every segment (``cfg`` is a ``DescribeConfig``); ``texts`` are the scrubbed free texts."""
    labels = np.asarray(labels)
    segments, sizes = np.unique(labels, return_counts=True)
    numeric = numeric_signals(frame, labels, numeric_columns)
    categories = category_signals(frame, labels, categorical_columns, cfg.min_category_lift, cfg.min_category_count)
    terms = class_tfidf(texts, labels, cfg.top_terms, cfg.ngram_max, cfg.min_term_df, cfg.max_term_docs, random_state)
    examples = nearest_examples(ids, texts, labels, distances, cfg.n_examples, cfg.example_chars)
    descriptions = [SegmentDescription(int(s), "", int(size), float(size / len(labels)), numeric[int(s)],
                                       categories[int(s)], terms[int(s)], examples[int(s)])
                    for s, size in zip(segments, sizes)]
    name_segments(descriptions, feature_labels or {}, cfg.name_min_std_diff, cfg.name_parts)
    return descriptions
