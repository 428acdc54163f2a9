"""Encoders and the embedding cache: order restored, batching exact, cache hits and resumable chunks."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.cache import EmbeddingCache
from segmentation.encoders import TextEncoder, TfidfEncoder, build_encoder
from segmentation.config import EncoderConfig

TEXTS = [
    "short",
    "a much longer customer review about running shoes, trail running and marathon training plans",
    "coupon did not apply",
    "the firmware update bricked my headphones and the preorder date slipped again",
    "tea",
    "large print catalogue please",
    "garden hose and a cordless drill",
]


class CountingEncoder:
    """Wraps an encoder and counts the texts it is asked to encode; can fail after some calls."""

    def __init__(self, inner, fail_after_calls: int | None = None):
        self.inner, self.fail_after_calls = inner, fail_after_calls
        self.calls, self.texts = 0, 0

    def identity(self):
        return self.inner.identity()

    def encode(self, texts):
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated kill mid-encoding")
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_sorted_batches_equal_one_by_one_in_original_order(tiny_encoder_dir, pooling):
    encoder = TextEncoder(str(tiny_encoder_dir), pooling=pooling, max_length=32, batch_size=3, normalize=False,
                          progress=False)
    batched = encoder.encode(TEXTS)
    one_by_one = np.vstack([encoder.encode([t]) for t in TEXTS])
    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Reversing the input reverses the output: rows follow the texts, not the length order.
    np.testing.assert_allclose(encoder.encode(TEXTS[::-1]), batched[::-1], atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_mean_pooling_ignores_padding_and_normalize_gives_unit_rows(tiny_encoder_dir):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    model = AutoModel.from_pretrained(tiny_encoder_dir).eval()
    with torch.inference_mode():
        hidden = model(**tokenizer(TEXTS[2], return_tensors="pt")).last_hidden_state[0]
    expected = hidden.mean(dim=0).numpy()
    encoder = TextEncoder(str(tiny_encoder_dir), "mean", 32, 4, normalize=False, progress=False)
    np.testing.assert_allclose(encoder.encode(TEXTS)[2], expected, atol=1e-5)
    unit = TextEncoder(str(tiny_encoder_dir), "mean", 32, 4, normalize=True, progress=False).encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_identity_names_model_files_and_settings(tiny_encoder_dir):
    identity = TextEncoder(str(tiny_encoder_dir), "mean", 32).identity()
    assert identity["path"] == str(tiny_encoder_dir.resolve())
    assert {"config.json", "model.safetensors"} <= set(identity["files"])
    assert len(identity["files"]["model.safetensors"]) == 64  # a sha256 of the weights
    assert identity != TextEncoder(str(tiny_encoder_dir), "cls", 32).identity()
    assert identity != TextEncoder(str(tiny_encoder_dir), "mean", 16).identity()


def test_cache_hit_avoids_reencoding(tmp_path, tiny_encoder_dir):
    inner = TextEncoder(str(tiny_encoder_dir), max_length=32, batch_size=4, progress=False)
    cache = EmbeddingCache(tmp_path / "cache", chunk_size=3, progress=False)
    first_encoder = CountingEncoder(inner)
    first = np.array(cache.get_or_encode(first_encoder, TEXTS))
    assert (first_encoder.calls, first_encoder.texts) == (3, 7)  # chunks of 3, 3, 1
    second_encoder = CountingEncoder(inner)
    second = cache.get_or_encode(second_encoder, TEXTS)
    assert second_encoder.calls == 0
    assert dict(cache.stats) == {"misses": 1, "chunks_encoded": 3, "hits": 1}
    np.testing.assert_array_equal(second, first)
    np.testing.assert_allclose(first, inner.encode(TEXTS), atol=1e-6)
    # Other texts or other pooling: another entry.
    third_encoder = CountingEncoder(inner)
    cache.get_or_encode(third_encoder, TEXTS[:-1] + ["changed"])
    assert third_encoder.calls == 3


def test_interrupted_encoding_resumes_from_complete_chunks(tmp_path, tiny_encoder_dir):
    inner = TextEncoder(str(tiny_encoder_dir), max_length=32, batch_size=4, progress=False)
    cache = EmbeddingCache(tmp_path / "cache", chunk_size=2, progress=False)
    dying = CountingEncoder(inner, fail_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_encode(dying, TEXTS)
    entry = cache.entry(cache.key(inner.identity(), TEXTS))
    assert sorted(p.name for p in entry.glob("chunk-*.npy")) == ["chunk-000000.npy", "chunk-000001.npy"]
    assert not (entry / "meta.json").exists()
    resumed = CountingEncoder(inner)
    result = EmbeddingCache(tmp_path / "cache", chunk_size=5, progress=False).get_or_encode(resumed, TEXTS)
    assert (resumed.calls, resumed.texts) == (2, 3)  # chunks 2 and 3 of size 2 (the entry keeps its chunking)
    np.testing.assert_allclose(result, inner.encode(TEXTS), atol=1e-6)
    assert not list(entry.glob("chunk-*.npy"))


def test_tfidf_encoder_is_deterministic_and_saves_without_pickle(tmp_path):
    texts = TEXTS * 3
    encoder = build_encoder(EncoderConfig(kind="tfidf", n_components=4, min_df=1), random_state=0).fit(texts)
    vectors = encoder.encode(texts)
    assert vectors.shape == (21, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = TfidfEncoder(n_components=4, min_df=1).fit(texts)
    np.testing.assert_allclose(again.encode(texts), vectors, atol=1e-6)
    assert again.identity() == encoder.identity()
    encoder.save(tmp_path)
    restored = TfidfEncoder.load(tmp_path)
    np.testing.assert_allclose(restored.encode(["coupon for running shoes"]), encoder.encode(["coupon for running shoes"]),
                               atol=1e-6)


def test_hf_encoder_needs_a_model_name():
    with pytest.raises(ValueError, match="encoder.name_or_path"):
        build_encoder(EncoderConfig(kind="hf", name_or_path=None))
    with pytest.raises(ValueError, match="encoder.kind must be one of"):
        build_encoder(EncoderConfig(kind="word2vec"))
