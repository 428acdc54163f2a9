"""The fitted pipeline: segments recovered, save -> load -> predict identical, precomputed embeddings, HF encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segmentation.config import ClusterConfig, DescribeConfig, EncoderConfig, FeatureConfig
from segmentation.io import load_customers
from segmentation.metrics import clustering_scores
from segmentation.pipeline import SegmentationPipeline

TFIDF = EncoderConfig(kind="tfidf", n_components=32, min_df=2, progress=False)


@pytest.fixture(scope="module")
def customers(tmp_path_factory, make_data_config):
    cfg = make_data_config(None, tmp_path_factory.mktemp("data"), split_column="split", filters={"snapshot": 0})
    cfg.synthetic.n_customers = 400
    return load_customers(cfg).frame


@pytest.fixture(scope="module")
def fitted(customers, tmp_path_factory, make_schema):
    pipeline = SegmentationPipeline(make_schema(), TFIDF, cluster=ClusterConfig(k=6),
                                    describe=DescribeConfig(min_term_df=2), random_state=0, progress=False,
                                    cache_dir=str(tmp_path_factory.mktemp("cache")))
    return pipeline.fit(customers)


def test_fit_recovers_the_synthetic_personas(fitted, customers):
    assert fitted.n_segments_ == 6 and fitted.labels_.shape == (400,)
    assert clustering_scores(customers.true_segment, fitted.labels_)["nmi"] > 0.9
    assert len(fitted.descriptions_) == 6 and len(fitted.strategies_) == 6
    assert len({d.name for d in fitted.descriptions_}) == 6
    assert sum(d.size for d in fitted.descriptions_) == 400
    assert fitted.scrub_report_["replaced"]  # planted personal data was found and replaced
    assert fitted.fit_features_.shape[0] == 400


def test_personal_data_never_reaches_profiles_or_descriptions(fitted, customers):
    _, profiles, _ = fitted._prepare(customers)
    text = json.dumps([d.as_dict() for d in fitted.descriptions_]) + " ".join(profiles)
    for column in ("name", "email", "phone"):
        for value in customers[column]:
            assert value not in text
    assert "[EMAIL]" in " ".join(profiles) or "[PHONE]" in " ".join(profiles)


def test_save_load_predict_gives_the_same_labels(fitted, customers, tmp_path):
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "arrays.safetensors", "encoder.json", "encoder.safetensors", "pipeline.json"]
    loaded = SegmentationPipeline.load(tmp_path / "model", progress=False)
    np.testing.assert_array_equal(loaded.predict(customers), fitted.labels_)
    np.testing.assert_array_equal(fitted.predict(customers), fitted.labels_)
    assigned = loaded.assign(customers.iloc[:5])
    assert assigned.columns.tolist() == ["id", "segment", "segment_name", "distance"]
    assert assigned.id.tolist() == customers.customer_id.iloc[:5].tolist()
    np.testing.assert_allclose(assigned.distance, np.round(fitted.distances_[:5], 6))
    assert [d.name for d in loaded.descriptions_] == [d.name for d in fitted.descriptions_]
    assert loaded.strategies_ == fitted.strategies_


def test_precomputed_embeddings_and_mixture_probabilities(customers, tmp_path, make_schema):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(len(customers), 8)).astype(np.float32)
    pipeline = SegmentationPipeline(make_schema(), TFIDF, features=FeatureConfig(text_weight=0.2),
                                    cluster=ClusterConfig(method="gmm", k=6, pca_components=10), progress=False)
    labels = pipeline.fit_predict(customers, embeddings=embeddings)
    assert pipeline.encoder_ is None
    assert clustering_scores(customers.true_segment, labels)["nmi"] > 0.8  # behaviour carries the signal
    pipeline.save(tmp_path / "m")
    loaded = SegmentationPipeline.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(customers, embeddings=embeddings), labels)
    assigned = loaded.assign(customers, embeddings=embeddings)
    assert assigned.columns.tolist() == ["id", "segment", "segment_name", "distance", "probability"]
    assert assigned.probability.between(0, 1).all()
    with pytest.raises(ValueError, match="precomputed embeddings"):
        loaded.predict(customers)


def test_hf_encoder_pipeline_round_trip_uses_the_cache(customers, tiny_encoder_dir, tmp_path, make_schema):
    encoder = EncoderConfig(kind="hf", name_or_path=str(tiny_encoder_dir), max_length=48, batch_size=32,
                            chunk_size=150, progress=False)
    pipeline = SegmentationPipeline(make_schema(), encoder, cluster=ClusterConfig(k=6),
                                    cache_dir=str(tmp_path / "cache"), progress=False).fit(customers)
    assert pipeline.cache_stats_ == {"misses": 1, "chunks_encoded": 3}
    pipeline.save(tmp_path / "model")
    state = json.loads((tmp_path / "model" / "encoder.json").read_text())
    assert state["name_or_path"] == str(tiny_encoder_dir) and state["identity"]["files"]
    loaded = SegmentationPipeline.load(tmp_path / "model", cache_dir=str(tmp_path / "cache"), progress=False)
    np.testing.assert_array_equal(loaded.predict(customers), pipeline.labels_)
    assert loaded.cache_stats_ == {"hits": 1}
