"""Dynamic segmentation: assign a later snapshot with a saved model and report what changed.

    result = migrate(scorer, before_frame, after_frame, dynamics_cfg)
    result.matrix      # customers per (segment before, segment after), matched by id
    result.movers      # id, segment_before, segment_after, names
    result.report      # shares, emerging groups, drift, re-fit decision (migration.json)

Definitions:

- migration matrix: rows the segment of each customer in the earlier snapshot, columns the segment in
  the later one, counts of customers present in both (matched by id); moved share = off-diagonal / all;
- emerging groups: a customer of the later snapshot whose distance to the nearest centre exceeds the
  ``emerging_quantile`` quantile of the earlier snapshot's distances is far from every segment; without
  change about 1 - quantile of customers are, so a larger share signals a group the segments do not
  cover. The far customers are described by their standardised differences from all later customers;
- description drift, per segment: each numeric feature's segment mean in both snapshots, standardised by
  the earlier snapshot's population (z = (segment mean - population mean at t0) / population sd at t0);
  the segment's drift is the mean |z(t1) - z(t0)| over features (in population standard deviations), with
  its largest changes listed, plus the overlap (Jaccard) of the segment's top terms. The drift score is
  the largest segment drift among segments with at least ``min_segment_size`` customers in both;
- re-fit: when the drift score exceeds ``refit_threshold`` or the far share exceeds
  ``max_emerging_share``; with ``refit`` on, a new model is fitted on the later snapshot with the saved
  model's settings (k chosen again when it was chosen the first time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.describe import class_tfidf, feature_label
from segmentation.io import customer_ids

log = logging.getLogger(__name__)

MIN_SEGMENT_SIZE = 20


@dataclass
class Snapshot:
    """A snapshot assigned with the model: assignments (id, segment, distance, ...) and what drift needs."""

    assignments: pd.DataFrame
    frame: pd.DataFrame  # prepared: derived columns added, text scrubbed
    free_text: list[str]


@dataclass
class MigrationResult:
    matrix: pd.DataFrame
    movers: pd.DataFrame
    report: dict
    before: Snapshot | None = None
    after: Snapshot | None = None
    refit_scorer: object | None = None
    notes: list[str] = field(default_factory=list)


def assign_snapshot(pipeline, frame: pd.DataFrame) -> Snapshot:
    """Assign every customer of ``frame`` with a fitted ``SegmentationPipeline`` (one encoding pass)."""
    prepared, profiles, free_text = pipeline._prepare(frame)
    blocks = pipeline._blocks(prepared, pipeline._encode(profiles, None, len(prepared)))
    ids = customer_ids(frame, pipeline._configs()[0].id_column)
    assignments = pipeline.assignments(ids, pipeline.cluster_features(blocks))
    return Snapshot(assignments, prepared.reset_index(drop=True), free_text)


def migration_matrix(before: pd.DataFrame, after: pd.DataFrame, n_segments: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(counts per segment before x segment after, the matched customers) from two assignment tables."""
    for name, table in (("before", before), ("after", after)):
        duplicated = table["id"][table["id"].duplicated()]
        if len(duplicated):
            raise ValueError(f"{name} snapshot has duplicate ids, e.g. {duplicated.iloc[0]!r}; ids must be unique")
    matched = before[["id", "segment"]].merge(after[["id", "segment"]], on="id", suffixes=("_before", "_after"))
    segments = list(range(n_segments))
    matrix = pd.crosstab(matched["segment_before"], matched["segment_after"]).reindex(
        index=segments, columns=segments, fill_value=0).astype(int)
    matrix.index.name, matrix.columns.name = "before", "after"
    return matrix, matched


def _standardised_means(frame: pd.DataFrame, labels: np.ndarray, columns: list[str], mean: pd.Series,
                        std: pd.Series) -> pd.DataFrame:
    means = frame[columns].astype(float).groupby(np.asarray(labels)).mean()
    return (means - mean) / std.where(std > 0, 1.0)


def description_drift(before: Snapshot, after: Snapshot, numeric_columns: list[str], n_segments: int,
                      feature_labels: dict[str, str], top_terms: int = 10, top_changes: int = 3,
                      min_segment_size: int = MIN_SEGMENT_SIZE, random_state: int = 0) -> dict:
    """Per-segment change of the description between two snapshots (module docstring), and the drift score."""
    columns = [c for c in numeric_columns if c in before.frame.columns and c in after.frame.columns]
    labels_before = before.assignments["segment"].to_numpy()
    labels_after = after.assignments["segment"].to_numpy()
    sizes_before = np.bincount(labels_before, minlength=n_segments)
    sizes_after = np.bincount(labels_after, minlength=n_segments)
    z_before = z_after = None
    if columns:
        population = before.frame[columns].astype(float)
        mean, std = population.mean(), population.std(ddof=0)
        z_before = _standardised_means(before.frame, labels_before, columns, mean, std)
        z_after = _standardised_means(after.frame, labels_after, columns, mean, std)
    terms_before = class_tfidf(before.free_text, labels_before, top_terms, random_state=random_state)
    terms_after = class_tfidf(after.free_text, labels_after, top_terms, random_state=random_state)
    segments = []
    for s in range(n_segments):
        entry = {"segment": s, "size_before": int(sizes_before[s]), "size_after": int(sizes_after[s]),
                 "share_before": float(sizes_before[s] / max(len(labels_before), 1)),
                 "share_after": float(sizes_after[s] / max(len(labels_after), 1)),
                 "mean_abs_std_diff_change": None, "top_changes": [], "term_overlap": None}
        if z_before is not None and s in z_before.index and s in z_after.index:
            change = (z_after.loc[s] - z_before.loc[s]).astype(float)
            entry["mean_abs_std_diff_change"] = float(change.abs().mean())
            entry["changes"] = {c: float(v) for c, v in change.items()}
            strongest = change.abs().sort_values(ascending=False).index[:top_changes]
            entry["top_changes"] = [f"{feature_label(c, feature_labels)} {change[c]:+.2f} sd" for c in strongest]
        words_before = {t for t, _ in terms_before.get(s, [])}
        words_after = {t for t, _ in terms_after.get(s, [])}
        if words_before or words_after:
            entry["term_overlap"] = len(words_before & words_after) / len(words_before | words_after)
        entry["terms_gained"] = sorted(words_after - words_before)
        entry["terms_lost"] = sorted(words_before - words_after)
        segments.append(entry)
    eligible = [e["mean_abs_std_diff_change"] for e in segments if e["mean_abs_std_diff_change"] is not None
                and e["size_before"] >= min_segment_size and e["size_after"] >= min_segment_size]
    shares_before = np.array([e["share_before"] for e in segments])
    shares_after = np.array([e["share_after"] for e in segments])
    return {"segments": segments, "score": float(max(eligible)) if eligible else 0.0,
            "share_shift": float(0.5 * np.abs(shares_after - shares_before).sum()),
            "definition": "drift of a segment = mean over numeric features of |z(after) - z(before)|, z = (segment "
                          "mean - population mean before) / population sd before; score = the largest segment drift "
                          f"(segments of at least {min_segment_size} customers in both snapshots); share shift = total "
                          "variation distance between the segment shares"}


def emerging_groups(before: Snapshot, after: Snapshot, quantile: float, numeric_columns: list[str],
                    feature_labels: dict[str, str], top: int = 5) -> dict:
    """Customers of the later snapshot farther from every centre than the earlier snapshot's ``quantile``."""
    if not 0 < quantile < 1:
        raise ValueError(f"dynamics.emerging_quantile must lie in (0, 1), got {quantile}")
    threshold = float(np.quantile(before.assignments["distance"].to_numpy(), quantile))
    far = after.assignments["distance"].to_numpy() > threshold
    signals = []
    columns = [c for c in numeric_columns if c in after.frame.columns]
    if far.any() and columns:
        values = after.frame[columns].astype(float)
        std = values.std(ddof=0)
        diff = (values[far].mean() - values.mean()) / std.where(std > 0, 1.0)
        for column in diff.abs().sort_values(ascending=False).index[:top]:
            signals.append({"feature": feature_label(column, feature_labels),
                            "far_mean": float(values[far][column].mean()), "all_mean": float(values[column].mean()),
                            "std_diff": float(diff[column])})
    return {"quantile": quantile, "threshold": threshold, "count": int(far.sum()),
            "share": float(far.mean()) if len(far) else 0.0, "segments_of_far": {
                int(k): int(v) for k, v in pd.Series(after.assignments["segment"][far]).value_counts().items()},
            "signals": signals}


def migrate(pipeline, before_frame: pd.DataFrame, after_frame: pd.DataFrame, cfg, moved_column: str | None = None,
            random_state: int = 0) -> MigrationResult:
    """Assign both snapshots with ``pipeline`` and compute the migration report (``cfg``: a ``DynamicsConfig``)."""
    before, after = assign_snapshot(pipeline, before_frame), assign_snapshot(pipeline, after_frame)
    k = pipeline.n_segments_
    matrix, matched = migration_matrix(before.assignments, after.assignments, k)
    names = {d.segment: d.name for d in pipeline.descriptions_}
    changed = matched["segment_before"] != matched["segment_after"]
    movers = matched[changed].assign(name_before=lambda m: m.segment_before.map(names),
                                     name_after=lambda m: m.segment_after.map(names)).reset_index(drop=True)
    pairs = movers.groupby(["segment_before", "segment_after"]).size().sort_values(ascending=False)
    schema = pipeline._configs()[0]
    numeric = list(schema.numeric_columns)
    labels = pipeline.feature_labels
    report = {
        "before": len(before.assignments), "after": len(after.assignments), "matched": len(matched),
        "only_before": int(len(before.assignments) - len(matched)),
        "only_after": int(len(after.assignments) - len(matched)),
        "moved": int(changed.sum()), "moved_share": float(changed.mean()) if len(matched) else 0.0,
        "movers_by_pair": [{"from": int(a), "to": int(b), "count": int(n)} for (a, b), n in pairs.items()],
        "emerging": emerging_groups(before, after, cfg.emerging_quantile, numeric, labels),
        "drift": description_drift(before, after, numeric, k, labels, top_changes=cfg.top_changes,
                                   random_state=random_state),
    }
    if moved_column and moved_column in after_frame.columns:
        truth = after_frame[moved_column].astype(str).str.lower().isin(["true", "1", "yes"]).to_numpy()
        truth_by_id = dict(zip(customer_ids(after_frame, schema.id_column), truth))
        actual = np.array([truth_by_id.get(i, False) for i in matched["id"]])
        predicted = changed.to_numpy()
        tp = int((actual & predicted).sum())
        report["ground_truth"] = {
            "column": moved_column, "moved_share": float(actual.mean()) if len(actual) else 0.0,
            "precision": tp / max(int(predicted.sum()), 1), "recall": tp / max(int(actual.sum()), 1),
            "stayed_in_segment_when_not_moved": float((~predicted[~actual]).mean()) if (~actual).any() else None}
    reasons = []
    if report["drift"]["score"] > cfg.refit_threshold:
        reasons.append(f"drift score {report['drift']['score']:.3f} > dynamics.refit_threshold {cfg.refit_threshold}")
    if report["emerging"]["share"] > cfg.max_emerging_share:
        reasons.append(f"{report['emerging']['share']:.1%} of customers far from every segment > "
                       f"dynamics.max_emerging_share {cfg.max_emerging_share:.1%}")
    report["refit"] = {"needed": bool(reasons), "reason": "; ".join(reasons) if reasons else
                       f"drift score {report['drift']['score']:.3f} <= {cfg.refit_threshold} and "
                       f"{report['emerging']['share']:.1%} far <= {cfg.max_emerging_share:.1%}"}
    return MigrationResult(matrix, movers, report, before, after)


def refit_scorer(scorer, frame: pd.DataFrame, data, cache_dir: str | None = None, progress: bool = True):
    """A new scoring model fitted on ``frame`` with the settings ``scorer`` was fitted with."""
    from omegaconf import OmegaConf

    from segmentation.config import SegmentConfig
    from segmentation.pipeline import SegmentationPipeline
    from segmentation.prediction_run import fit_predictions

    old = scorer.segmentation
    schema, encoder, profile, features, cluster, describe = old._configs()
    pipeline = SegmentationPipeline(schema, encoder, profile, features, cluster, describe, old.playbook_, old.scrub_pii,
                                    cache_dir=cache_dir, random_state=old.random_state, progress=progress).fit(frame)
    sections = {k: v for k, v in scorer.fit_config.items() if k in ("needs", "recommend", "scoring", "seed")}
    cfg = OmegaConf.merge(OmegaConf.structured(SegmentConfig), sections)
    return fit_predictions(pipeline, frame, cfg, data, progress).scorer


def write_migration(result: MigrationResult, out: Path, title: str, names: dict[int, str]) -> dict[str, Path]:
    """migration.csv, movers.csv, migration.json and migration.html in ``out``."""
    import json

    from segmentation.prediction_report import render_migration_report

    out.mkdir(parents=True, exist_ok=True)
    paths = {"migration": out / "migration.csv", "movers": out / "movers.csv", "report_json": out / "migration.json",
             "report": out / "migration.html"}
    result.matrix.to_csv(paths["migration"])
    result.movers.to_csv(paths["movers"], index=False)
    paths["report_json"].write_text(json.dumps(result.report, indent=1, default=float))
    paths["report"].write_text(render_migration_report(title, result.report, result.matrix, names), encoding="utf-8")
    return paths


def load_snapshot(data, path: str | None, filters: dict, split: str | None = None):
    """One snapshot: ``path`` (a file) or the configured data set, with ``filters`` instead of data.filters.

    Validated as for scoring: a customer without free text is kept (the model assigns them by their fields).
    """
    import dataclasses

    from segmentation.io import load_customers

    snapshot = dataclasses.replace(data, filters=dict(filters), **({"path": path, "synthetic": None} if path else {}))
    return load_customers(snapshot, split, allow_empty_text=True)


def run_migration(cfg) -> MigrationResult:
    """``scripts/migrate.py``: both snapshots, the report files, and a re-fitted model when drift calls for one."""
    from omegaconf import OmegaConf

    from segmentation.scoring import ScoringPipeline

    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    data = OmegaConf.to_object(cfg.data)
    dynamics = OmegaConf.to_object(cfg.dynamics)
    scorer = ScoringPipeline.load(cfg.model_dir, cache_dir=data.cache_dir)
    before = load_snapshot(data, cfg.before, OmegaConf.to_container(cfg.before_filters))
    after = load_snapshot(data, cfg.after, OmegaConf.to_container(cfg.after_filters))
    for name, loaded in (("before", before), ("after", after)):
        if len(loaded.rejects):
            loaded.rejects.to_csv(out / f"rejects_{name}.csv", index=False)
    result = migrate(scorer.segmentation, before.frame, after.frame, dynamics, cfg.moved_column, cfg.seed)
    result.report["data"] = {name: {k: loaded.summary[k] for k in ("rows_read", "rows_used", "rows_rejected")}
                             for name, loaded in (("before", before), ("after", after))}
    if result.report["refit"]["needed"] and dynamics.refit:
        log.info("re-fitting: %s", result.report["refit"]["reason"])
        result.refit_scorer = refit_scorer(scorer, after.frame, data, data.cache_dir)
        result.report["refit"]["model_dir"] = str(result.refit_scorer.save(out / "model"))
        result.report["refit"]["n_segments"] = result.refit_scorer.segmentation.n_segments_
    names = {d.segment: d.name for d in scorer.segmentation.descriptions_}
    write_migration(result, out, cfg.title, names)
    return result
