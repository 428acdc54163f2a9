"""One segmentation run, from a ``SegmentConfig`` to the files of its output directory.

    DIR/config.yaml      the resolved configuration
    DIR/summary.json     rows read / used / rejected, chosen k, scores, cache use, timings
    DIR/rejects.csv      rows that could not be used, with the reason (only when there are any)
    DIR/segments.csv     id, segment, segment_name, distance (and probability for mixtures)
    DIR/profiles.json    segment descriptions and strategies, k selection, evaluation, scrubbing
    DIR/strategies.md    the strategy per segment with its evidence
    DIR/report.html      the self-contained report
    DIR/needs.json       need heads' evaluation, few-shot curves, recommendation hit rates (when fitted)
    DIR/needs.html       the same as a self-contained page
    DIR/model/           the fitted pipeline (SegmentationPipeline.load), need heads (needs/) and
                         scoring.json: everything scripts/predict.py needs (ScoringPipeline.load)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from segmentation.atomic import check_writable, write_text, write_with
from segmentation.config import SegmentConfig
from segmentation.encoders import build_encoder
from segmentation.io import LoadResult, customer_ids, load_customers
from segmentation.metrics import clustering_scores, contingency
from segmentation.pipeline import SegmentationPipeline, _json_default
from segmentation.playbook import Playbook, strategies_markdown
from segmentation.prediction_run import fit_predictions, needs_digest, write_prediction_outputs
from segmentation.report import render_report

log = logging.getLogger(__name__)


@dataclass
class SegmentationRun:
    output_dir: Path
    pipeline: SegmentationPipeline
    loaded: LoadResult
    evaluation: dict | None
    paths: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def label_column(cfg_label: str | None, label_columns: list[str], columns) -> str | None:
    """The ground-truth column to score against: the configured one, else the first label column present."""
    if cfg_label:
        if cfg_label not in columns:
            raise ValueError(f"label_column {cfg_label!r} is not in the data (columns: {list(columns)})")
        return cfg_label
    return next((c for c in label_columns if c in columns), None)


def run_segmentation(cfg: SegmentConfig) -> SegmentationRun:
    """Load, validate, fit, describe, recommend and write every output of a run."""
    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    out = check_writable(cfg.output_dir)  # fail now, not after the encoding
    paths = {"config": write_with(out / "config.yaml", lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))}
    data = OmegaConf.to_object(cfg.data)
    # Configuration mistakes surface before any data is read.
    build_encoder(OmegaConf.to_object(cfg.encoder), cfg.seed)
    playbook = Playbook.from_yaml(cfg.playbook)

    loaded = load_customers(data, cfg.split)
    timings["load"] = time.perf_counter() - start
    rejects_path = out / "rejects.csv"
    if len(loaded.rejects):
        write_with(rejects_path, lambda tmp: loaded.rejects.to_csv(tmp, index=False))
        paths["rejects"] = rejects_path
    elif rejects_path.exists():  # from an earlier run into the same directory
        rejects_path.unlink()

    pipeline = SegmentationPipeline(data.schema, OmegaConf.to_object(cfg.encoder), OmegaConf.to_object(cfg.profile),
                                    OmegaConf.to_object(cfg.features), OmegaConf.to_object(cfg.cluster),
                                    OmegaConf.to_object(cfg.describe), playbook, data.scrub_pii,
                                    cache_dir=data.cache_dir, random_state=cfg.seed, progress=cfg.encoder.progress)
    mark = time.perf_counter()
    pipeline.fit(loaded.frame)
    timings["fit"] = time.perf_counter() - mark
    frame = loaded.frame
    ids = customer_ids(frame, data.schema.id_column)

    assignments = pipeline.assignments(ids, pipeline.fit_features_, pipeline.labels_)
    paths["segments"] = write_with(out / "segments.csv", lambda tmp: assignments.to_csv(tmp, index=False))

    evaluation, table = None, None
    target = label_column(cfg.label_column, list(data.schema.label_columns), frame.columns)
    if target is not None:
        known = frame[target].notna().to_numpy()
        truth = frame[target].astype(str).to_numpy()[known]
        evaluation = {"label_column": target, **clustering_scores(truth, pipeline.labels_[known])}
        table = contingency(truth, pipeline.labels_[known])
        log.info("agreement with %s: NMI %.3f, ARI %.3f, accuracy %.3f", target, evaluation["nmi"],
                 evaluation["ari"], evaluation["accuracy"])

    encoder_cfg = cfg.encoder
    run_info = {
        "data": f"{data.name} ({', '.join(s['file'].rsplit('/', 1)[-1] for s in loaded.summary['sources'])})",
        "split": cfg.split or "all rows passing data.filters",
        "encoder": f"{encoder_cfg.kind}: {encoder_cfg.name_or_path or 'fitted on the profiles'}" + (
            f" ({encoder_cfg.pooling} pooling, max_length {encoder_cfg.max_length})" if encoder_cfg.kind == "hf" else ""),
        "fusion": (f"text {cfg.features.text_weight} / numeric {cfg.features.numeric_weight} / categorical "
                   f"{cfg.features.categorical_weight}") if cfg.features.fusion else "off (text embeddings only)",
        "clustering": f"{pipeline.clusterer_.__class__.__name__}"
                      + (f" ({pipeline.clusterer_.algorithm_})" if hasattr(pipeline.clusterer_, "algorithm_") else ""),
        "segments (k)": pipeline.n_segments_,
        "playbook": playbook.source,
        "seed": cfg.seed,
    }
    segments = []
    strategies = {s.segment: s for s in pipeline.strategies_}
    for d in pipeline.descriptions_:
        segments.append({**d.as_dict(), "strategy": strategies[d.segment].as_dict()})
    profiles = {"run": run_info, "data": loaded.summary, "scrubbing": pipeline.scrub_report_,
                "k_selection": pipeline.k_selection_.as_dict() if pipeline.k_selection_ else None,
                "evaluation": evaluation, "segments": segments}
    paths["profiles"] = write_text(out / "profiles.json", json.dumps(profiles, indent=1, default=_json_default))
    paths["strategies"] = write_text(out / "strategies.md", strategies_markdown(
        pipeline.strategies_, pipeline.descriptions_, cfg.report.title))

    mark = time.perf_counter()
    html = render_report(title=cfg.report.title, descriptions=pipeline.descriptions_, strategies=pipeline.strategies_,
                         selection=pipeline.k_selection_, features=pipeline.fit_features_, labels=pipeline.labels_,
                         load_summary=loaded.summary, run_info=run_info, evaluation=evaluation, contingency=table,
                         scrub_report=pipeline.scrub_report_, feature_labels=pipeline.feature_labels,
                         max_points=cfg.report.max_points, random_state=cfg.seed)
    paths["report"] = write_text(out / "report.html", html)
    timings["report"] = time.perf_counter() - mark
    mark = time.perf_counter()
    prediction = fit_predictions(pipeline, frame, cfg, data, progress=cfg.encoder.progress)
    if prediction.needs is not None or prediction.recommendations is not None:
        paths.update(write_prediction_outputs(prediction, out, cfg.report.title, run_info))
    else:
        for stale in ("needs.json", "needs.html"):
            (out / stale).unlink(missing_ok=True)
    timings["needs"] = time.perf_counter() - mark
    paths["model"] = prediction.scorer.save(out / "model")
    timings["total"] = time.perf_counter() - start

    summary = {key: loaded.summary[key] for key in ("rows_in_files", "rows_excluded_by_selection", "rows_read",
                                                    "rows_used", "rows_rejected", "rejects_by_check")}
    summary.update({"n_segments": pipeline.n_segments_, "segment_names": [d.name for d in pipeline.descriptions_],
                    "evaluation": evaluation, "scrubbing": pipeline.scrub_report_,
                    "needs": needs_digest(prediction),
                    "embedding_cache": getattr(pipeline, "cache_stats_", None),
                    "timings_s": {k: round(v, 2) for k, v in timings.items()}})
    paths["summary"] = write_text(out / "summary.json", json.dumps(summary, indent=1, default=_json_default))
    return SegmentationRun(out, pipeline, loaded, evaluation, paths, timings)
