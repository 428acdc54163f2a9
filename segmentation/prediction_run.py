"""Need heads, recommendations and the scoring model of a segmentation run (``scripts/segment.py``).

    result = fit_predictions(pipeline, frame, cfg, data)        # after SegmentationPipeline.fit(frame)
    result.scorer.save("DIR/model")                            # everything scripts/predict.py needs
    write_prediction_outputs(result, "DIR", title)             # needs.json, needs.html

Recommendations are evaluated on the rows the need head did not see (the test split, or every row under
k-fold): hit rate@k of the held-out purchases (``recommend.heldout_column``) for the combined ranking,
the segment propensity alone, the predicted needs alone and two most-popular baselines (by purchase
history, and by the held-out column's frequency among the training rows).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.needs import NeedsResult, fit_need_heads, split_labels
from segmentation.recommend import SegmentRecommender, find_need_target, purchase_columns, ranking_scores
from segmentation.scoring import ScoringPipeline
from segmentation.targets import resolve_targets, split_values

log = logging.getLogger(__name__)


@dataclass
class PredictionResult:
    scorer: ScoringPipeline
    needs: NeedsResult | None
    recommendations: dict | None
    notes: list[str] = field(default_factory=list)


def _plain(cfg):
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg) if OmegaConf.is_config(cfg) else cfg


def evaluate_recommendations(recommender: SegmentRecommender, frame: pd.DataFrame, segments: np.ndarray, rows: np.ndarray,
                             needs: np.ndarray | None, heldout_column: str, separator: str, ks: list[int],
                             train_rows: np.ndarray) -> dict:
    """Hit rate@k and recall@k of each ranking on ``rows`` (positions in ``frame``)."""
    baskets = [set(split_values(v, separator)) for v in frame[heldout_column].astype(object).where(
        frame[heldout_column].notna(), "").astype(str).to_numpy()[rows]]
    n = len(rows)
    train_counts = pd.Series([c for i in train_rows for c in split_values(str(frame[heldout_column].iloc[i]), separator)])
    frequency = np.array([(train_counts == c).sum() for c in recommender.categories_], dtype=float)
    rankings = {
        "popular_purchases": recommender.popular(n),
        "popular_heldout": np.tile(np.argsort(-frequency, kind="stable"), (n, 1)),
        "segment": recommender.rank(segments[rows]),
    }
    if needs is not None:
        rankings["needs"] = recommender.rank(segments[rows], needs, need_weight=1.0)
        rankings["segment+needs"] = recommender.rank(segments[rows], needs)
    return {name: ranking_scores(ranking, recommender.categories_, baskets, ks) for name, ranking in rankings.items()}


def fit_predictions(pipeline, frame: pd.DataFrame, cfg, data, progress: bool = True) -> PredictionResult:
    """Fit need heads and the recommender on the rows ``pipeline`` was fitted on, and evaluate both.

    ``cfg`` is the run's ``SegmentConfig`` (its ``needs``, ``recommend`` and ``scoring`` sections);
    ``data`` its ``DataConfig``.
    """
    needs_cfg, recommend_cfg, scoring_cfg = _plain(cfg.needs), _plain(cfg.recommend), _plain(cfg.scoring)
    notes: list[str] = []
    blocks = getattr(pipeline, "fit_blocks_", None)
    if blocks is None:  # a pipeline fitted with keep_features=False: compute the blocks again
        blocks = pipeline.feature_blocks(frame)
    splits = split_labels(frame, data.split_column)
    needs = None
    if needs_cfg.enabled:
        targets = resolve_targets(needs_cfg.targets, list(data.schema.label_columns), frame.columns,
                                  needs_cfg.basket_column, needs_cfg.label_separator)
        if targets:
            needs = fit_need_heads(blocks, frame, targets, needs_cfg, splits, data.train_split, data.test_split,
                                   cfg.seed, progress)
        else:
            notes.append("no need targets: the data has none of data.schema.label_columns and needs.targets is unset")

    recommender, need_target, recommendations = None, None, None
    if recommend_cfg.enabled:
        if purchase_columns(frame.columns, recommend_cfg.purchase_prefix):
            recommender = SegmentRecommender(recommend_cfg.purchase_prefix, recommend_cfg.need_weight,
                                             recommend_cfg.smoothing).fit(frame, pipeline.labels_, pipeline.n_segments_)
            heads = needs.heads if needs else {}
            need_target = find_need_target(recommender, heads, recommend_cfg.need_target)
            if need_target is None:
                notes.append("recommendations use segment propensity only: no need head predicts the categories "
                             f"{recommender.categories_}")
            if recommend_cfg.heldout_column in frame.columns:
                if need_target is not None:
                    held = needs.held_out[need_target]
                    rows = held.rows
                    need_proba = recommender.align(held.classes, held.proba)
                else:
                    rows = np.flatnonzero(splits == data.test_split) if splits is not None and data.test_split \
                        and (splits == data.test_split).any() else np.arange(len(frame))
                    need_proba = None
                train_rows = np.setdiff1d(np.arange(len(frame)), rows) if len(rows) < len(frame) else np.arange(len(frame))
                recommendations = {
                    "rows": int(len(rows)), "need_target": need_target, "need_weight": recommend_cfg.need_weight,
                    "heldout_column": recommend_cfg.heldout_column,
                    "scores": evaluate_recommendations(recommender, frame, pipeline.labels_, rows, need_proba,
                                                       recommend_cfg.heldout_column, needs_cfg.label_separator,
                                                       list(recommend_cfg.eval_k), train_rows)}
                combined = recommendations["scores"].get("segment+needs") or recommendations["scores"]["segment"]
                k = recommend_cfg.top_k
                log.info("recommendations: hit rate@%d %.3f (most popular: %.3f)", k, combined.get(f"hit_rate@{k}", np.nan),
                         recommendations["scores"]["popular_purchases"].get(f"hit_rate@{k}", np.nan))
            else:
                notes.append(f"recommendations not evaluated: no held-out column {recommend_cfg.heldout_column!r}")
        else:
            notes.append(f"no recommendations: no {recommend_cfg.purchase_prefix}<category> columns")

    threshold = float(np.quantile(pipeline.distances_, scoring_cfg.novelty_quantile))
    validation = {"max_text_chars": data.max_text_chars, "missing_numeric": data.missing_numeric}
    fit_config = {"needs": dataclasses.asdict(needs_cfg), "recommend": dataclasses.asdict(recommend_cfg),
                  "scoring": dataclasses.asdict(scoring_cfg), "seed": cfg.seed}
    scorer = ScoringPipeline(pipeline, needs.heads if needs else {}, needs.features if needs else None, recommender,
                             need_target, recommend_cfg.top_k, threshold, validation, fit_config)
    for note in notes:
        log.info(note)
    return PredictionResult(scorer, needs, recommendations, notes)


def prediction_summary(result: PredictionResult) -> dict:
    """``needs.json``: evaluation of every head, few-shot curves, recommendation scores, notes."""
    needs = result.needs
    return {
        "scheme": needs.scheme if needs else None,
        "features": needs.features if needs else None,
        "targets": needs.evaluation if needs else {},
        "few_shot": needs.few_shot if needs else {},
        "recommendations": result.recommendations,
        "distance_threshold": result.scorer.distance_threshold,
        "notes": result.notes,
    }


def needs_digest(result: PredictionResult) -> dict | None:
    """The headline numbers for ``summary.json``."""
    if result.needs is None and result.recommendations is None:
        return None
    heads = {}
    for spec, e in (result.needs.evaluation if result.needs else {}).items():
        heads[spec] = {k: round(e[k], 4) for k in ("accuracy", "subset_accuracy", "macro_f1", "roc_auc", "brier", "ece")
                       if isinstance(e.get(k), float)}
    digest = {"heads": heads}
    if result.recommendations:
        digest["recommendations"] = {name: {k: round(v, 4) for k, v in s.items() if k.startswith("hit_rate@")}
                                     for name, s in result.recommendations["scores"].items()}
    return digest


def write_prediction_outputs(result: PredictionResult, out: Path, title: str,
                             run_info: dict | None = None) -> dict[str, Path]:
    from segmentation.pipeline import _json_default
    from segmentation.prediction_report import render_needs_report

    out = Path(out)
    summary = prediction_summary(result)
    paths = {"needs": out / "needs.json"}
    paths["needs"].write_text(json.dumps(summary, indent=1, default=_json_default))
    paths["needs_report"] = out / "needs.html"
    paths["needs_report"].write_text(render_needs_report(title, summary, run_info or {}), encoding="utf-8")
    return paths
