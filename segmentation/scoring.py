"""Score customers with a saved model: segment, need probabilities, strategy and recommended products.

    scorer = ScoringPipeline.load("DIR/model")
    scored = scorer.score(frame)                 # a DataFrame; rows that fail validation are in scorer.rejects_
    scorer.score({"age": 41, "gender": "female", ...})                    # one customer, fields only
    summary = score_file(scorer, "new.csv", "scored.csv", chunk_size=2048)   # streamed, bounded memory

A model directory (``DIR/model`` of ``scripts/segment.py``) holds the segmentation pipeline
(``pipeline.json``, ``arrays.safetensors``, encoder), the need heads (``needs/``), and ``scoring.json``:
the recommender (segment purchase propensities), the distance beyond which a customer is far from every
segment, and the validation settings of the data the model was fitted on.

Output columns, one row per valid customer:

    id, segment, segment_name, distance[, probability], far_from_segments
    need.<target>                 binary: P(yes); multi-class: the most probable class; multi-label: the
                                  labels with P >= 0.5, joined by ";"
    need.<target>.<class>         multi-class and multi-label: the probability of each class
    strategy.product, strategy.price, strategy.channel, strategy.promotion    the segment's strategy
    recommended_products          the top-k categories, best first, joined by ";"

Validation is the segmentation's (``segmentation.io``) with one difference: a customer without free text
is scored (the profile builder writes their text from their fields), since scoring must serve a record
typed into a form. Categories the model never saw are counted (``unknown_categories``) and one-hot
encoded as "other" (or nothing), never an error.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.io import (REJECT_COLUMNS, iter_table_chunks, selection_mask, validate_chunk)
from segmentation.needs import NeedHead, head_inputs, read_manifest, save_heads
from segmentation.pipeline import SegmentationPipeline
from segmentation.playbook import FIELDS
from segmentation.recommend import SegmentRecommender
from segmentation.schema import DataConfig

log = logging.getLogger(__name__)

SCORING_FILE = "scoring.json"
FORMAT_VERSION = 1
PROBABILITY_DECIMALS = 6


class ScoringPipeline:
    """A fitted segmentation pipeline plus need heads and a recommender, saved and loaded as one directory."""

    def __init__(self, segmentation: SegmentationPipeline, heads: dict | None = None, features: list[str] | None = None,
                 recommender: SegmentRecommender | None = None, need_target: str | None = None, top_k: int = 3,
                 distance_threshold: float | None = None, validation: dict | None = None,
                 fit_config: dict | None = None):
        self.segmentation = segmentation
        self.heads = heads or {}
        self.features = list(features or ["text"])
        self.recommender = recommender
        self.need_target = need_target
        self.top_k = top_k
        self.distance_threshold = distance_threshold
        # DataConfig fields used to validate input: max_text_chars, missing_numeric.
        self.validation = dict(validation or {})
        # The needs / recommend / scoring sections and seed the model was fitted with (to re-fit it alike).
        self.fit_config = dict(fit_config or {})

    # -- persistence --------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.segmentation.save(directory)
        save_heads(self.heads, self.features, directory)
        state = {"format_version": FORMAT_VERSION, "features": self.features, "need_target": self.need_target,
                 "top_k": self.top_k, "distance_threshold": self.distance_threshold, "validation": self.validation,
                 "fit_config": self.fit_config,
                 "recommender": self.recommender.get_state() if self.recommender is not None else None}
        (directory / SCORING_FILE).write_text(json.dumps(state, indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path, cache_dir: str | None = None, progress: bool = True) -> ScoringPipeline:
        """A saved model; a segmentation-only directory (no ``scoring.json``) scores segments and strategies."""
        directory = Path(directory)
        segmentation = SegmentationPipeline.load(directory, cache_dir=cache_dir, progress=progress)
        path = directory / SCORING_FILE
        state = json.loads(path.read_text()) if path.is_file() else {}
        if state and state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {state.get('format_version')}, this code reads {FORMAT_VERSION}")
        heads: dict = {}
        manifest = read_manifest(directory)
        features = state.get("features") or ["text"]
        if manifest:
            features = manifest["features"]
            for spec, entry in manifest["heads"].items():
                if entry["kind"] == "frozen":
                    heads[spec] = NeedHead.load(directory / "needs", entry)
                elif entry["kind"] == "finetuned":
                    from segmentation.finetune import FinetunedHead

                    heads[spec] = FinetunedHead.load(directory / "needs", entry, progress=progress)
                else:
                    raise ValueError(f"{directory / 'needs' / 'manifest.json'}: unknown head kind {entry['kind']!r}")
        recommender = SegmentRecommender.from_state(state["recommender"]) if state.get("recommender") else None
        return cls(segmentation, heads, features, recommender, state.get("need_target"), state.get("top_k", 3),
                   state.get("distance_threshold"), state.get("validation"), state.get("fit_config"))

    # -- scoring ------------------------------------------------------------------------------------------
    @property
    def schema(self):
        return self.segmentation._configs()[0]

    def output_columns(self) -> list[str]:
        columns = ["id", "segment", "segment_name", "distance"]
        if hasattr(self.segmentation.clusterer_, "predict_proba"):
            columns.append("probability")
        columns.append("far_from_segments")
        for spec, head in self.heads.items():
            columns.append(f"need.{spec}")
            if head.target.kind != "binary":
                columns += [f"need.{spec}.{c}" for c in head.classes_]
        columns += [f"strategy.{f}" for f in FIELDS]
        if self.recommender is not None:
            columns.append("recommended_products")
        return columns

    def score_valid(self, frame: pd.DataFrame, top_k: int | None = None) -> pd.DataFrame:
        """Score rows that already passed validation (``segmentation.io``); one output row per input row."""
        from segmentation.io import customer_ids

        seg = self.segmentation
        seg._check_fitted()
        prepared, profiles, _ = seg._prepare(frame)
        blocks = seg._blocks(prepared, seg._encode(profiles, None, len(prepared)))
        X = seg.cluster_features(blocks)
        out = seg.assignments(customer_ids(frame, self.schema.id_column), X)
        threshold = self.distance_threshold if self.distance_threshold is not None else np.inf
        out["far_from_segments"] = out["distance"].to_numpy() > threshold
        need_probabilities = {}
        inputs = None
        for spec, head in self.heads.items():
            if isinstance(head, NeedHead):
                inputs = head_inputs(blocks, self.features) if inputs is None else inputs
                proba = head.predict_proba(inputs)
            else:  # fine-tuned: reads the profile text itself
                proba = head.predict_proba_texts(profiles)
            need_probabilities[spec] = proba
            classes = [str(c) for c in head.classes_]
            if head.target.kind == "binary":
                out[f"need.{spec}"] = np.round(proba[:, 1], PROBABILITY_DECIMALS)
                continue
            if head.target.kind == "multiclass":
                out[f"need.{spec}"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
            else:
                out[f"need.{spec}"] = [";".join(c for c, p in zip(classes, row) if p >= 0.5) for row in proba]
            rounded = np.round(proba, PROBABILITY_DECIMALS)
            out = pd.concat([out, pd.DataFrame(rounded, columns=[f"need.{spec}.{c}" for c in classes],
                                               index=out.index)], axis=1)
        strategies = {s.segment: s for s in seg.strategies_}
        for field_name in FIELDS:
            texts = {segment: s.recommendations[field_name].text for segment, s in strategies.items()}
            out[f"strategy.{field_name}"] = out["segment"].map(texts)
        if self.recommender is not None:
            needs = None
            if self.need_target in need_probabilities:
                needs = self.recommender.align(self.heads[self.need_target].classes_, need_probabilities[self.need_target])
            ranked = self.recommender.recommend(out["segment"].to_numpy(), needs, top_k or self.top_k)
            out["recommended_products"] = [";".join(r) for r in ranked]
        return out[self.output_columns()]

    def data_config(self, path: str | Path = "<dataframe>", fmt: str = "auto", filters: dict | None = None,
                    missing_numeric: str | None = None, max_text_chars: int | None = None) -> DataConfig:
        """The validation settings of the fitted data (overridable) for a table to score."""
        return DataConfig(name="scoring", path=str(path), format=fmt, synthetic=None, schema=self.schema,
                          filters=dict(filters or {}), scrub_pii=self.segmentation.scrub_pii,
                          max_text_chars=max_text_chars or self.validation.get("max_text_chars", 20000),
                          missing_numeric=missing_numeric or self.validation.get("missing_numeric", "reject"))

    def unknown_categories(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column, values that are not one of the fitted one-hot columns."""
        tabular = self.segmentation.tabular_
        if tabular is None:
            return {}
        counts = {}
        for column, categories in tabular.categories_.items():
            if column in frame.columns:
                unknown = int((~frame[column].astype(str).isin(set(categories))).sum())
                if unknown:
                    counts[column] = unknown
        return counts

    def score(self, customers, top_k: int | None = None) -> pd.DataFrame:
        """Validate and score a DataFrame, one record (dict) or a list of records; returns the scored rows.

        Rows that fail validation are left out and listed in ``self.rejects_`` (same columns as
        ``rejects.csv``). A table without the id column gets positional ids ``row-1``, ``row-2``, ...
        """
        if isinstance(customers, dict):
            customers = pd.DataFrame([customers])
        elif isinstance(customers, list):
            customers = pd.DataFrame.from_records(customers)
        frame = customers.reset_index(drop=True)
        frame.index = pd.RangeIndex(1, len(frame) + 1)
        id_column = self.schema.id_column
        if id_column and id_column not in frame.columns:
            frame = frame.assign(**{id_column: [f"row-{i}" for i in frame.index]})
        data = self.data_config()
        valid, problems, warnings = validate_chunk(frame, Path("<dataframe>"), data, {}, {}, allow_empty_text=True)
        for warning in warnings:
            log.warning(warning)
        self.rejects_ = pd.DataFrame.from_records(problems, columns=REJECT_COLUMNS)
        if len(self.rejects_):
            log.warning("%d of %d customers rejected: %s", self.rejects_.row_number.nunique(), len(frame),
                        self.rejects_.reason.tolist()[:5])
        self.unknown_categories_ = self.unknown_categories(valid)
        if not len(valid):
            return pd.DataFrame(columns=self.output_columns())
        return self.score_valid(valid, top_k).reset_index(drop=True)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def companion_path(output: Path, kind: str, suffix: str) -> Path:
    """``scored.csv`` -> ``scored.rejects.csv``, ``scored.summary.json``: files that belong to one output."""
    return output.with_name(f"{output.stem}.{kind}{suffix}")


def score_file(scorer: ScoringPipeline, input_path: str | Path, output_path: str | Path, chunk_size: int = 2048,
               fmt: str = "auto", filters: dict | None = None, top_k: int | None = None,
               missing_numeric: str | None = None, max_text_chars: int | None = None,
               progress: bool = True) -> dict:
    """Stream ``input_path`` through ``scorer`` chunk by chunk; write the scored CSV, rejects and a summary.

    Each chunk is read, selected (``filters``), validated, encoded, assigned, scored and appended to
    ``output_path`` before the next is read, so memory stays bounded whatever the size of the input (only
    the ids seen so far are kept, to find duplicates). Rejected rows are appended to
    ``<output stem>.rejects.csv``; ``<output stem>.summary.json`` accounts for every row:
    ``rows_read == rows_scored + rows_rejected``.
    """
    from tqdm.auto import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} does not exist")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path = companion_path(output_path, "rejects", ".csv")
    summary_path = companion_path(output_path, "summary", ".json")
    for stale in (rejects_path, output_path):
        stale.unlink(missing_ok=True)
    data = scorer.data_config(input_path, fmt, filters, missing_numeric, max_text_chars)
    columns = scorer.output_columns()
    pd.DataFrame(columns=columns).to_csv(output_path, index=False)

    start = time.perf_counter()
    seen_ids: dict[str, str] = {}
    filled: dict = {}
    counts: Counter = Counter()
    rejects_by_check: Counter = Counter()
    unknown: Counter = Counter()
    segments: Counter = Counter()
    warnings: list[str] = []
    scrubbed: Counter = Counter()
    bar = tqdm(desc="scoring", unit="customer", disable=not progress)
    for chunk, read_rejects in iter_table_chunks(input_path, fmt, chunk_size):
        counts["chunks"] += 1
        counts["rows_in_file"] += len(chunk) + len(read_rejects)
        keep = selection_mask(chunk, input_path, data) if len(chunk) else pd.Series(dtype=bool)
        counts["rows_excluded_by_selection"] += int((~keep).sum()) if len(chunk) else 0
        chunk = chunk[keep] if len(chunk) else chunk
        valid, problems, chunk_warnings = validate_chunk(chunk, input_path, data, seen_ids, filled,
                                                         allow_empty_text=True)
        warnings += [w for w in chunk_warnings if w not in warnings]
        records = read_rejects + problems
        if records:
            rejects = pd.DataFrame.from_records(records, columns=REJECT_COLUMNS).sort_values("row_number", kind="stable")
            rejects.to_csv(rejects_path, mode="a", header=not rejects_path.exists(), index=False)
            counts["rows_rejected"] += rejects.row_number.nunique()
            rejects_by_check.update(rejects.drop_duplicates(["row_number", "check"])["check"].tolist())
        if len(valid):
            unknown.update(scorer.unknown_categories(valid))
            text_columns = [c for c in scorer.schema.text_columns if c in valid.columns]
            if text_columns:
                counts["rows_without_text"] += int((valid[text_columns].astype(str).apply(
                    lambda c: c.str.strip() == "").all(axis=1)).sum())
            scored = scorer.score_valid(valid, top_k)
            report = scorer.segmentation._last_scrub_report
            if report is not None:
                scrubbed.update(report.replaced)
            scored.to_csv(output_path, mode="a", header=False, index=False)
            counts["rows_scored"] += len(scored)
            counts["far_from_segments"] += int(scored["far_from_segments"].sum())
            segments.update(scored["segment"].tolist())
        bar.update(len(chunk) + len(read_rejects))
    bar.close()
    rows_read = counts["rows_in_file"] - counts["rows_excluded_by_selection"]
    if rows_read != counts["rows_scored"] + counts["rows_rejected"]:  # an accounting bug, never a data problem
        raise AssertionError(f"row accounting broken: read {rows_read} != scored {counts['rows_scored']} + "
                             f"rejected {counts['rows_rejected']}")
    elapsed = time.perf_counter() - start
    summary = {
        "input": str(input_path), "output": str(output_path),
        "rejects": str(rejects_path) if counts["rows_rejected"] else None,
        "rows_in_file": counts["rows_in_file"], "rows_excluded_by_selection": counts["rows_excluded_by_selection"],
        "rows_read": rows_read, "rows_scored": counts["rows_scored"], "rows_rejected": counts["rows_rejected"],
        "rejects_by_check": dict(rejects_by_check), "rows_without_text": counts["rows_without_text"],
        "unknown_categories": dict(unknown), "filled": filled, "warnings": warnings,
        "far_from_segments": counts["far_from_segments"],
        "far_from_segments_share": counts["far_from_segments"] / counts["rows_scored"] if counts["rows_scored"] else None,
        "segments": {int(k): v for k, v in sorted(segments.items())}, "scrubbed": dict(scrubbed),
        "chunks": counts["chunks"], "chunk_size": chunk_size, "seconds": round(elapsed, 3),
        "customers_per_second": round(counts["rows_scored"] / elapsed, 1) if elapsed > 0 else None,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    if unknown:
        log.warning("categories the model never saw (encoded as 'other' or nothing): %s", dict(unknown))
    if counts["rows_rejected"]:
        log.warning("%d of %d rows rejected (%s); see %s", counts["rows_rejected"], rows_read, dict(rejects_by_check),
                    rejects_path)
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def run_predict(cfg) -> dict:
    """``scripts/predict.py``: load the model, stream the input through it, write the outputs and the config."""
    from omegaconf import OmegaConf

    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, companion_path(output, "config", ".yaml"), resolve=True)
    scorer = ScoringPipeline.load(cfg.model_dir, cache_dir=cfg.cache_dir, progress=cfg.progress)
    return score_file(scorer, cfg.input, output, cfg.chunk_size, cfg.format, OmegaConf.to_container(cfg.filters),
                      cfg.top_k, cfg.missing_numeric, cfg.max_text_chars, cfg.progress)
