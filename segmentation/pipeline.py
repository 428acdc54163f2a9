"""The fitted segmentation pipeline: profiles -> encoder -> fusion -> preprocessing -> clusterer -> descriptions.

    pipeline = SegmentationPipeline(schema, encoder_cfg, cluster=ClusterConfig(k=6)).fit(frame)
    pipeline.labels_, pipeline.descriptions_, pipeline.strategies_
    pipeline.save("model/")
    SegmentationPipeline.load("model/").assign(new_customers)   # id, segment, segment_name, distance

A saved pipeline is JSON (configuration, learned numbers, descriptions, strategies), one safetensors file
of arrays and the encoder: a reference to the Hugging Face model (path or hub name, plus its identity,
checked at load) or the fitted TF-IDF model (vocabulary as JSON, weights as safetensors). Nothing is
unpickled at load.

``fit`` and ``predict`` accept precomputed ``embeddings`` (one row per customer, in table order) in place
of encoding, for tables whose vectors were computed elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.atomic import replacing
from segmentation.cache import EmbeddingCache
from segmentation.clustering import CLUSTERERS, KMeansClusterer, Preprocessor, make_clusterer
from segmentation.config import ClusterConfig, DescribeConfig, EncoderConfig, FeatureConfig, ProfileConfig
from segmentation.describe import SegmentDescription, describe_segments
from segmentation.encoders import build_encoder, load_encoder
from segmentation.features import (AGE_GROUP, INCOME_QUARTILE, AnalystFeatures, BlockFusion,
                                   DominantDirectionRemoval, TabularFeatures)
from segmentation.io import customer_ids
from segmentation.playbook import Playbook, Strategy
from segmentation.privacy import PiiScrubber
from segmentation.profiles import FreeTexts, ProfileBuilder, scrub_text_columns, text_values
from segmentation.schema import SchemaConfig
from segmentation.selection import KSelection, select_k

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DERIVED_LABELS = {AGE_GROUP: "age", INCOME_QUARTILE: "income"}


def _as_config(cls, value):
    """A config dataclass from an instance, a dict, an OmegaConf node or None (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}")
    return cls(**value)


class SegmentationPipeline:
    """From a validated customer table to segments, descriptions and strategies; saved and reloaded whole."""

    def __init__(self, schema: SchemaConfig, encoder: EncoderConfig | None = None, profile: ProfileConfig | None = None,
                 features: FeatureConfig | None = None, cluster: ClusterConfig | None = None,
                 describe: DescribeConfig | None = None, playbook: Playbook | None = None, scrub_pii: bool = True,
                 cache_dir: str | None = None, random_state: int = 0, progress: bool = True,
                 keep_features: bool = True):
        self.schema = schema
        self.encoder = encoder
        self.profile = profile
        self.features = features
        self.cluster = cluster
        self.describe = describe
        self.playbook = playbook
        self.scrub_pii = scrub_pii
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.progress = progress
        # The clustering-space matrix of the fitted rows, for the report's projection (not saved).
        self.keep_features = keep_features

    # Configuration, resolved once per call so that __init__ only stores what it is given.
    def _configs(self):
        return (_as_config(SchemaConfig, self.schema), _as_config(EncoderConfig, self.encoder),
                _as_config(ProfileConfig, self.profile), _as_config(FeatureConfig, self.features),
                _as_config(ClusterConfig, self.cluster), _as_config(DescribeConfig, self.describe))

    @property
    def feature_labels(self) -> dict[str, str]:
        return {**DERIVED_LABELS, **dict(_as_config(SchemaConfig, self.schema).feature_labels)}

    def _prepare(self, frame: pd.DataFrame, profiles: bool = True):
        """Derived columns, scrubbed text; returns the frame, the profile texts and the free texts.

        ``profiles=False`` (precomputed embeddings: no text is encoded) skips building the profiles and
        returns the free texts as ``FreeTexts``, scrubbed row by row when read.
        """
        schema = _as_config(SchemaConfig, self.schema)
        frame = self.analyst_.transform(frame)
        if not profiles:
            scrubber = PiiScrubber() if self.scrub_pii else None
            self._last_scrub_report = scrubber.report if scrubber else None
            return frame, None, FreeTexts(frame, schema.text_columns, schema.name_columns, scrubber)
        frame, report = scrub_text_columns(frame, schema.text_columns, schema.name_columns, self.scrub_pii)
        self._last_scrub_report = report
        profiles = self.profile_builder_.build(frame)
        columns = [text_values(frame[c]) for c in schema.text_columns]
        free_text = [" | ".join(t for t in row if t) for row in zip(*columns)] if columns else [""] * len(frame)
        return frame, profiles, free_text

    def _encode(self, texts: list[str] | None, embeddings: np.ndarray | None, n_rows: int) -> np.ndarray:
        if embeddings is not None:
            if embeddings.shape[0] != n_rows:
                raise ValueError(f"embeddings have {embeddings.shape[0]} rows for {n_rows} customers")
            # A memory-mapped float32 file stays mapped: a million rows are not copied into memory.
            return embeddings if embeddings.dtype == np.float32 else np.asarray(embeddings, dtype=np.float32)
        if self.encoder_ is None:
            raise ValueError("this pipeline was fitted on precomputed embeddings; pass embeddings= to predict")
        encoder_cfg = _as_config(EncoderConfig, self.encoder)
        if encoder_cfg.cache and self.cache_dir:
            cache = EmbeddingCache(Path(self.cache_dir) / "embeddings", encoder_cfg.chunk_size, self.progress)
            vectors = cache.get_or_encode(self.encoder_, texts)
            self.cache_stats_ = dict(cache.stats)
            return vectors
        return self.encoder_.encode(texts)

    def _blocks(self, prepared: pd.DataFrame, text_vectors: np.ndarray) -> dict[str, np.ndarray]:
        text = self.text_post_.transform(text_vectors) if self.text_post_ is not None else text_vectors
        blocks = {"text": np.asarray(text, dtype=np.float32)}
        if self.tabular_ is not None:
            blocks["numeric"] = self.tabular_.transform_numeric(prepared)
            blocks["categorical"] = self.tabular_.transform_categorical(prepared)
        return blocks

    def _fuse(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return blocks["text"] if self.fusion_ is None else self.fusion_.transform(blocks)

    def fit(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> SegmentationPipeline:
        schema, encoder_cfg, profile_cfg, feature_cfg, cluster_cfg, describe_cfg = self._configs()
        if len(frame) == 0:
            raise ValueError("cannot segment an empty table")
        self.analyst_ = AnalystFeatures(feature_cfg.age_column, list(feature_cfg.age_bins),
                                        feature_cfg.income_column).fit(frame)
        field_columns = profile_cfg.field_columns
        if field_columns is None:
            field_columns = list(schema.categorical_columns) + list(self.analyst_.derived_columns_)
        self.profile_builder_ = ProfileBuilder(profile_cfg.template, field_columns, schema.text_columns,
                                               profile_cfg.text_separator, schema.pii_columns)
        prepared, profiles, free_text = self._prepare(frame, profiles=embeddings is None)

        self.encoder_ = None
        if embeddings is None:
            self.encoder_ = build_encoder(encoder_cfg, self.random_state).fit(profiles)
        text_vectors = self._encode(profiles, embeddings, len(prepared))
        n = len(prepared)
        stream = not self.keep_features and n >= cluster_cfg.stream_threshold
        # Everything below is fitted on a sample when streaming, on all rows otherwise.
        rows = (np.sort(np.random.default_rng(self.random_state).choice(n, cluster_cfg.stream_fit_sample, replace=False))
                if stream and n > cluster_cfg.stream_fit_sample else slice(None))
        fit_frame, fit_vectors = prepared.iloc[rows], np.asarray(text_vectors[rows])
        self.text_post_ = None
        if encoder_cfg.dominant_share is not None:
            self.text_post_ = DominantDirectionRemoval(encoder_cfg.dominant_share, encoder_cfg.max_dominant_removed,
                                                       random_state=self.random_state).fit(fit_vectors)
            log.info("text embeddings: %d dominant direction(s) removed (%.0f%% of their variance)",
                     len(self.text_post_.components_), 100 * self.text_post_.removed_share_)

        # Fitted with or without fusion: need-prediction heads read the tabular blocks too.
        self.tabular_ = TabularFeatures(list(schema.numeric_columns), list(schema.categorical_columns),
                                        feature_cfg.log_transform, feature_cfg.min_category_share).fit(prepared)
        self.fusion_ = None
        blocks = self._blocks(fit_frame, fit_vectors)
        if feature_cfg.fusion:
            weights = {"text": feature_cfg.text_weight, "numeric": feature_cfg.numeric_weight,
                       "categorical": feature_cfg.categorical_weight}
            self.fusion_ = BlockFusion(weights, random_state=self.random_state).fit(blocks)
        if self.keep_features:
            self.fit_blocks_ = blocks
        fused = self._fuse(blocks)
        del blocks
        self.preprocessor_ = Preprocessor(cluster_cfg.normalize, cluster_cfg.pca_components,
                                          random_state=self.random_state).fit(fused)
        X = self.preprocessor_.transform(fused)
        del fused
        self.n_features_in_ = int(X.shape[1])

        self.k_selection_: KSelection | None = None
        k = cluster_cfg.k
        if cluster_cfg.method != "hdbscan" and k is None:
            def make(n_clusters, seed):
                return make_clusterer(cluster_cfg.method, n_clusters, cluster_cfg, seed)

            self.k_selection_ = select_k(X, make, list(range(cluster_cfg.k_min, cluster_cfg.k_max + 1)),
                                         cluster_cfg.method, cluster_cfg.silhouette_sample, cluster_cfg.stability_runs,
                                         cluster_cfg.stability_sample, cluster_cfg.min_stability, cluster_cfg.tolerance,
                                         cluster_cfg.selection_sample, self.random_state, self.progress,
                                         cluster_cfg.bic_tolerance)
            k = self.k_selection_.chosen_k
        self.clusterer_ = make_clusterer(cluster_cfg.method, k, cluster_cfg, self.random_state).fit(X)
        if stream:
            self._stream_fit(prepared, text_vectors, cluster_cfg)
        else:
            self.labels_ = np.asarray(self.clusterer_.labels_, dtype=np.int64)
        self.cluster_centers_ = np.asarray(self.clusterer_.cluster_centers_)
        self.n_segments_ = int(len(self.cluster_centers_))
        if not stream:
            self.distances_ = self._distances(X, self.labels_)
        if self.keep_features:
            self.fit_features_ = X
        del X

        ids = customer_ids(prepared, schema.id_column).tolist()
        numeric = [c for c in schema.numeric_columns if c in prepared.columns]
        categorical = list(schema.categorical_columns) + list(self.analyst_.derived_columns_)
        self.descriptions_: list[SegmentDescription] = describe_segments(
            prepared, self.labels_, self.distances_, ids, free_text, numeric, categorical, describe_cfg,
            self.feature_labels, self.random_state)
        # After the descriptions: with precomputed embeddings, only the texts they read were scrubbed.
        self.scrub_report_ = self._last_scrub_report.as_dict() if self._last_scrub_report else None
        playbook = self.playbook if self.playbook is not None else Playbook.from_yaml()
        self.playbook_ = playbook
        self.strategies_: list[Strategy] = [playbook.apply(d, self.feature_labels) for d in self.descriptions_]
        return self

    def _row_chunks(self, prepared: pd.DataFrame, text_vectors, chunk: int):
        """Clustering-space features of consecutive row ranges: (start, stop, X)."""
        for lo in range(0, len(prepared), chunk):
            hi = min(lo + chunk, len(prepared))
            yield lo, hi, self.cluster_features(self._blocks(prepared.iloc[lo:hi], np.asarray(text_vectors[lo:hi])))

    def _stream_fit(self, prepared: pd.DataFrame, text_vectors, cluster_cfg: ClusterConfig) -> None:
        """Refine the sample-fitted clusterer over every row in chunks, then assign every row."""
        from tqdm.auto import tqdm

        if isinstance(self.clusterer_, KMeansClusterer) and cluster_cfg.stream_epochs > 0:
            # Continue from the centres fitted on the sample: MiniBatchKMeans steps over the full table.
            from sklearn.cluster import MiniBatchKMeans

            # No random reassignment of small centres: they start from a good fit, not from noise.
            stream = MiniBatchKMeans(self.clusterer_.n_clusters, init=self.clusterer_.cluster_centers_, n_init=1,
                                     batch_size=cluster_cfg.minibatch_size, reassignment_ratio=0.0,
                                     random_state=self.random_state)
            for _ in range(cluster_cfg.stream_epochs):
                for _, _, X in tqdm(self._row_chunks(prepared, text_vectors, cluster_cfg.stream_chunk),
                                    total=-(-len(prepared) // cluster_cfg.stream_chunk), disable=not self.progress,
                                    desc="clustering (streamed)", unit="chunk", leave=False):
                    for lo in range(0, len(X), cluster_cfg.minibatch_size):
                        stream.partial_fit(X[lo:lo + cluster_cfg.minibatch_size])
            self.clusterer_.cluster_centers_ = stream.cluster_centers_.astype(np.float64)
            self.clusterer_.algorithm_ = "minibatch_kmeans (streamed)"
        self.labels_ = np.empty(len(prepared), dtype=np.int64)
        self.distances_ = np.empty(len(prepared), dtype=np.float64)
        for lo, hi, X in self._row_chunks(prepared, text_vectors, cluster_cfg.stream_chunk):
            self.labels_[lo:hi] = self.clusterer_.predict(X)
            self.distances_[lo:hi] = np.linalg.norm(X - self.clusterer_.cluster_centers_[self.labels_[lo:hi]], axis=1)

    def _distances(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        out = np.empty(len(X), dtype=np.float64)
        for lo in range(0, len(X), 65536):
            block = np.asarray(X[lo:lo + 65536], dtype=np.float64)
            out[lo:lo + len(block)] = np.linalg.norm(block - self.cluster_centers_[labels[lo:lo + len(block)]], axis=1)
        return out

    def fit_predict(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> np.ndarray:
        return self.fit(frame, embeddings).labels_

    def feature_blocks(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``text`` (embeddings after the anisotropy correction), ``numeric`` (standardised) and ``categorical``
        (one-hot) features of ``frame``: what fusion and the need-prediction heads read."""
        self._check_fitted()
        prepared, profiles, _ = self._prepare(frame, profiles=embeddings is None)
        return self._blocks(prepared, self._encode(profiles, embeddings, len(prepared)))

    def cluster_features(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """The clustering-space features (what the clusterer sees) of ``feature_blocks`` output."""
        return self.preprocessor_.transform(self._fuse(blocks))

    def transform_features(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> np.ndarray:
        """The clustering-space features of ``frame`` (what the clusterer sees)."""
        return self.cluster_features(self.feature_blocks(frame, embeddings))

    def predict(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None, chunk_rows: int = 65536) -> np.ndarray:
        """Segment of each customer, computed chunk by chunk (memory stays flat for millions of rows)."""
        labels = np.empty(len(frame), dtype=np.int64)
        for lo in range(0, len(frame), chunk_rows):
            part = frame.iloc[lo:lo + chunk_rows]
            vectors = None if embeddings is None else embeddings[lo:lo + chunk_rows]
            labels[lo:lo + len(part)] = self.clusterer_.predict(self.transform_features(part, vectors))
        return labels

    def transform(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Distances from each customer to every segment centre, shape (n, n_segments)."""
        return self.clusterer_.transform(self.transform_features(frame, embeddings))

    def assign(self, frame: pd.DataFrame, embeddings: np.ndarray | None = None) -> pd.DataFrame:
        """One row per customer: id, segment, segment_name, distance to its centre, probability (mixtures)."""
        X = self.transform_features(frame, embeddings)
        out = self.assignments(customer_ids(frame, _as_config(SchemaConfig, self.schema).id_column), X)
        return out

    def assignments(self, ids: pd.Series, X: np.ndarray, labels: np.ndarray | None = None) -> pd.DataFrame:
        """The ``segments.csv`` table for clustering-space features ``X`` (labels predicted unless given)."""
        if labels is None:
            labels = np.asarray(self.clusterer_.predict(X), dtype=np.int64)
        names = {d.segment: d.name for d in self.descriptions_}
        out = pd.DataFrame({"id": np.asarray(ids, dtype=object), "segment": labels,
                            "segment_name": [names.get(int(s), "") for s in labels],
                            "distance": np.round(self._distances(X, labels), 6)})
        if hasattr(self.clusterer_, "predict_proba"):
            probabilities = self.clusterer_.predict_proba(X)
            out["probability"] = np.round(probabilities[np.arange(len(labels)), labels], 6)
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "clusterer_"):
            raise RuntimeError("this SegmentationPipeline is not fitted; call fit or load a saved one")

    def save(self, directory: str | Path) -> Path:
        """Write the fitted pipeline to ``directory`` (JSON + safetensors + encoder; no pickle).

        Written beside ``directory`` and swapped in at the end: a failed save leaves an earlier one intact.
        """
        self._check_fitted()
        target = Path(directory)
        with replacing(target) as tmp:
            tmp.mkdir(parents=True)
            self._save_into(tmp)
        return target

    def _save_into(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        configs = self._configs()
        preprocessor_state, preprocessor_arrays = self.preprocessor_.get_state()
        text_post_state, text_post_arrays = self.text_post_.get_state() if self.text_post_ is not None else (None, {})
        clusterer_state, clusterer_arrays = self.clusterer_.get_state()
        method = next(name for name, cls in CLUSTERERS.items() if isinstance(self.clusterer_, cls))
        state = {
            "format_version": FORMAT_VERSION,
            "params": {"schema": dataclasses.asdict(configs[0]), "encoder": dataclasses.asdict(configs[1]),
                       "profile": dataclasses.asdict(configs[2]), "features": dataclasses.asdict(configs[3]),
                       "cluster": dataclasses.asdict(configs[4]), "describe": dataclasses.asdict(configs[5]),
                       "scrub_pii": self.scrub_pii, "random_state": self.random_state},
            "analyst": self.analyst_.get_state(),
            "profile_builder": self.profile_builder_.get_state(),
            "tabular": self.tabular_.get_state() if self.tabular_ else None,
            "fusion": self.fusion_.get_state() if self.fusion_ else None,
            "text_post": text_post_state,
            "preprocessor": preprocessor_state,
            "clusterer": {"method": method, **clusterer_state},
            "n_features_in": self.n_features_in_,
            "has_encoder": self.encoder_ is not None,
            "k_selection": self.k_selection_.as_dict() if self.k_selection_ else None,
            "descriptions": [d.as_dict() for d in self.descriptions_],
            "strategies": [s.as_dict() for s in self.strategies_],
            "playbook": self.playbook_.as_dict(),
            "scrub_report": self.scrub_report_,
        }
        (directory / "pipeline.json").write_text(json.dumps(state, indent=1, default=_json_default))
        arrays = {f"preprocessor.{k}": np.ascontiguousarray(v) for k, v in preprocessor_arrays.items()}
        arrays.update({f"clusterer.{k}": np.ascontiguousarray(v) for k, v in clusterer_arrays.items()})
        arrays.update({f"text_post.{k}": np.ascontiguousarray(v) for k, v in text_post_arrays.items()})
        save_file(arrays, str(directory / "arrays.safetensors"))
        if self.encoder_ is not None:
            self.encoder_.save(directory)

    @classmethod
    def load(cls, directory: str | Path, cache_dir: str | None = None, progress: bool = True) -> SegmentationPipeline:
        """A pipeline saved by ``save``, ready to ``predict`` / ``assign`` new customers."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        path = directory / "pipeline.json"
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a saved segmentation pipeline (no pipeline.json)")
        state = json.loads(path.read_text())
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {state.get('format_version')}, this code reads {FORMAT_VERSION}")
        params = state["params"]
        self = cls(SchemaConfig(**params["schema"]), EncoderConfig(**params["encoder"]), ProfileConfig(**params["profile"]),
                   FeatureConfig(**params["features"]), ClusterConfig(**params["cluster"]),
                   DescribeConfig(**params["describe"]), Playbook(**{k: v for k, v in state["playbook"].items()}),
                   params["scrub_pii"], cache_dir, params["random_state"], progress)
        arrays = load_file(str(directory / "arrays.safetensors"))
        part = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}  # noqa: E731
        self.analyst_ = AnalystFeatures.from_state(state["analyst"])
        self.profile_builder_ = ProfileBuilder.from_state(state["profile_builder"])
        self.tabular_ = TabularFeatures.from_state(state["tabular"]) if state["tabular"] else None
        self.fusion_ = BlockFusion.from_state(state["fusion"]) if state["fusion"] else None
        self.text_post_ = DominantDirectionRemoval.from_state(state["text_post"], part("text_post.")) \
            if state["text_post"] else None
        self.preprocessor_ = Preprocessor.from_state(state["preprocessor"], part("preprocessor."))
        clusterer_state = state["clusterer"]
        self.clusterer_ = CLUSTERERS[clusterer_state["method"]].from_state(clusterer_state, part("clusterer."))
        self.cluster_centers_ = np.asarray(self.clusterer_.cluster_centers_)
        self.n_segments_ = int(len(self.cluster_centers_))
        self.n_features_in_ = state["n_features_in"]
        self.encoder_ = load_encoder(directory, progress) if state["has_encoder"] else None
        self.k_selection_ = KSelection(**state["k_selection"]) if state["k_selection"] else None
        self.descriptions_ = [SegmentDescription.from_dict(d) for d in state["descriptions"]]
        self.strategies_ = [Strategy.from_dict(s) for s in state["strategies"]]
        self.playbook_ = self.playbook
        self.scrub_report_ = state["scrub_report"]
        return self


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
